package org.qalora.quant.gguf;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.qalora.quant.io.FormatException;

/**
 * The key-value section of a GGUF file: ordered keys, each with a typed value, and their binary form.
 *
 * <p>Every GGUF value type is read; values are held as: integers of any width {@code Long} (arrays {@code long[]}),
 * FLOAT32 {@code Float} ({@code float[]}), FLOAT64 {@code Double} ({@code double[]}), BOOL {@code Boolean}
 * ({@code boolean[]}), STRING {@code String} ({@code List<String>}). The type is kept beside the value, because
 * llama.cpp checks it: {@code llama.block_count} must be UINT32, not INT32 or UINT64.
 */
public final class GgufMetadata {

    /** GGUF's value type ids ({@code enum gguf_type}; gguf-py's {@code GGUFValueType}). */
    public enum ValueType {
        UINT8(0, 1), INT8(1, 1), UINT16(2, 2), INT16(3, 2), UINT32(4, 4), INT32(5, 4), FLOAT32(6, 4), BOOL(7, 1),
        STRING(8, 8), ARRAY(9, 12), UINT64(10, 8), INT64(11, 8), FLOAT64(12, 8);

        private final int id;
        private final int minBytes;

        ValueType(int id, int minBytes) {
            this.id = id;
            this.minBytes = minBytes;
        }

        public int id() { return id; }

        boolean isInteger() {
            return switch (this) {
                case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> true;
                default -> false;
            };
        }

        static ValueType byId(long id, String where) throws FormatException {
            for (ValueType t : values()) {
                if (t.id == id) {
                    return t;
                }
            }
            throw new FormatException(where + " has value type " + id + ", which GGUF does not define (0..12)");
        }
    }

    /**
     * One value. {@code elementType} is null unless {@code type} is ARRAY. Equality compares array contents.
     */
    public record Value(ValueType type, ValueType elementType, Object value) {
        public Value {
            Objects.requireNonNull(type);
            Objects.requireNonNull(value);
            if ((type == ValueType.ARRAY) != (elementType != null) || elementType == ValueType.ARRAY) {
                throw new IllegalArgumentException("an ARRAY value needs a non-array element type, a scalar none");
            }
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Value v && v.type == type && v.elementType == elementType
                    && Objects.deepEquals(v.value, value);
        }

        @Override
        public int hashCode() {
            return Objects.hash(type, elementType);
        }
    }

    private final Map<String, Value> values = new LinkedHashMap<>();

    /** Keys in insertion (file) order with their values. */
    public Map<String, Value> values() { return Collections.unmodifiableMap(values); }

    public boolean contains(String key) { return values.containsKey(key); }

    public int size() { return values.size(); }

    public Value value(String key) {
        Value v = values.get(key);
        if (v == null) {
            throw new IllegalArgumentException("GGUF metadata has no key " + key);
        }
        return v;
    }

    // --- writing side -------------------------------------------------------------------------------------------

    public GgufMetadata putString(String key, String v) { return put(key, new Value(ValueType.STRING, null, v)); }

    public GgufMetadata putUint32(String key, long v) {
        if (v < 0 || v > 0xFFFFFFFFL) {
            throw new IllegalArgumentException(key + " = " + v + " does not fit UINT32");
        }
        return put(key, new Value(ValueType.UINT32, null, v));
    }

    public GgufMetadata putFloat32(String key, float v) { return put(key, new Value(ValueType.FLOAT32, null, v)); }

    public GgufMetadata putBool(String key, boolean v) { return put(key, new Value(ValueType.BOOL, null, v)); }

    public GgufMetadata putStrings(String key, List<String> v) {
        return put(key, new Value(ValueType.ARRAY, ValueType.STRING, List.copyOf(v)));
    }

    public GgufMetadata putFloat32s(String key, float[] v) {
        return put(key, new Value(ValueType.ARRAY, ValueType.FLOAT32, v.clone()));
    }

    public GgufMetadata putInt32s(String key, int[] v) {
        long[] wide = new long[v.length];
        for (int i = 0; i < v.length; i++) {
            wide[i] = v[i];
        }
        return put(key, new Value(ValueType.ARRAY, ValueType.INT32, wide));
    }

    /** Adds {@code key}; a key may appear once (llama.cpp rejects files with duplicate keys). */
    public GgufMetadata put(String key, Value v) {
        if (values.containsKey(key)) {
            throw new IllegalArgumentException("GGUF metadata key " + key + " is set twice");
        }
        values.put(key, v);
        return this;
    }

    // --- reading side -------------------------------------------------------------------------------------------

    public String string(String key) { return (String) typed(key, ValueType.STRING, null).value(); }

    /** An integer of any integer type. */
    public long integer(String key) {
        Value v = value(key);
        if (!v.type().isInteger()) {
            throw new IllegalArgumentException("GGUF key " + key + " is " + v.type() + ", not an integer");
        }
        return (Long) v.value();
    }

    public float float32(String key) { return (Float) typed(key, ValueType.FLOAT32, null).value(); }

    public boolean bool(String key) { return (Boolean) typed(key, ValueType.BOOL, null).value(); }

    @SuppressWarnings("unchecked")
    public List<String> strings(String key) { return (List<String>) typed(key, ValueType.ARRAY, ValueType.STRING).value(); }

    public float[] float32s(String key) { return ((float[]) typed(key, ValueType.ARRAY, ValueType.FLOAT32).value()).clone(); }

    public int[] int32s(String key) {
        long[] wide = (long[]) typed(key, ValueType.ARRAY, ValueType.INT32).value();
        int[] out = new int[wide.length];
        for (int i = 0; i < wide.length; i++) {
            out[i] = (int) wide[i];
        }
        return out;
    }

    private Value typed(String key, ValueType type, ValueType element) {
        Value v = value(key);
        if (v.type() != type || v.elementType() != element) {
            throw new IllegalArgumentException("GGUF key " + key + " is " + v.type()
                    + (v.elementType() == null ? "" : " of " + v.elementType()) + ", expected " + type
                    + (element == null ? "" : " of " + element));
        }
        return v;
    }

    // --- binary form --------------------------------------------------------------------------------------------

    void writeTo(GgufOutput out) throws IOException {
        for (Map.Entry<String, Value> e : values.entrySet()) {
            out.string(e.getKey());
            Value v = e.getValue();
            out.u32(v.type().id());
            if (v.type() == ValueType.ARRAY) {
                out.u32(v.elementType().id());
                writeArray(out, v.elementType(), v.value());
            } else {
                writeScalar(out, v.type(), v.value());
            }
        }
    }

    private static void writeArray(GgufOutput out, ValueType t, Object array) throws IOException {
        switch (array) {
            case List<?> l -> {
                out.u64(l.size());
                for (Object o : l) {
                    writeScalar(out, t, o);
                }
            }
            case long[] a -> {
                out.u64(a.length);
                for (long x : a) {
                    writeScalar(out, t, x);
                }
            }
            case float[] a -> {
                out.u64(a.length);
                for (float x : a) {
                    out.f32(x);
                }
            }
            case double[] a -> {
                out.u64(a.length);
                for (double x : a) {
                    out.f64(x);
                }
            }
            case boolean[] a -> {
                out.u64(a.length);
                for (boolean x : a) {
                    out.u8(x ? 1 : 0);
                }
            }
            default -> throw new IllegalArgumentException("not a GGUF array: " + array.getClass());
        }
    }

    private static void writeScalar(GgufOutput out, ValueType t, Object v) throws IOException {
        switch (t) {
            case UINT8, INT8 -> out.u8((int) (long) (Long) v);
            case UINT16, INT16 -> out.u16((int) (long) (Long) v);
            case UINT32, INT32 -> out.u32((Long) v);
            case UINT64, INT64 -> out.u64((Long) v);
            case FLOAT32 -> out.f32((Float) v);
            case FLOAT64 -> out.f64((Double) v);
            case BOOL -> out.u8((Boolean) v ? 1 : 0);
            case STRING -> out.string((String) v);
            case ARRAY -> throw new IllegalArgumentException("nested GGUF arrays are not written");
        }
    }

    static GgufMetadata readFrom(GgufInput in, long count) throws IOException {
        GgufMetadata m = new GgufMetadata();
        for (long i = 0; i < count; i++) {
            long at = in.position();
            String key = in.string("metadata key " + i);
            String where = in.where() + ": metadata key " + key + " (byte " + at + ")";
            ValueType type = ValueType.byId(in.u32(), where);
            Value v;
            if (type == ValueType.ARRAY) {
                ValueType element = ValueType.byId(in.u32(), where + " array");
                if (element == ValueType.ARRAY) {
                    throw new FormatException(where + " is an array of arrays, which this reader does not decode");
                }
                long n = in.count(where + " array length", element.minBytes);
                v = new Value(ValueType.ARRAY, element, readArray(in, element, (int) n, where));
            } else {
                v = new Value(type, null, readScalar(in, type, where));
            }
            if (m.values.containsKey(key)) {
                throw new FormatException(where + " appears twice: a GGUF key must be unique");
            }
            m.values.put(key, v);
        }
        return m;
    }

    private static Object readArray(GgufInput in, ValueType t, int n, String where) throws IOException {
        if (t.isInteger()) {
            long[] a = new long[n];
            for (int i = 0; i < n; i++) {
                a[i] = (Long) readScalar(in, t, where);
            }
            return a;
        }
        return switch (t) {
            case FLOAT32 -> {
                float[] a = new float[n];
                for (int i = 0; i < n; i++) {
                    a[i] = in.f32();
                }
                yield a;
            }
            case FLOAT64 -> {
                double[] a = new double[n];
                for (int i = 0; i < n; i++) {
                    a[i] = in.f64();
                }
                yield a;
            }
            case BOOL -> {
                boolean[] a = new boolean[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (Boolean) readScalar(in, t, where);
                }
                yield a;
            }
            case STRING -> {
                List<String> a = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    a.add(in.string(where + " element " + i));
                }
                yield Collections.unmodifiableList(a);
            }
            default -> throw new FormatException(where + ": unexpected array element type " + t);
        };
    }

    private static Object readScalar(GgufInput in, ValueType t, String where) throws IOException {
        return switch (t) {
            case UINT8 -> (long) in.u8();
            case INT8 -> (long) (byte) in.u8();
            case UINT16 -> (long) in.u16();
            case INT16 -> (long) (short) in.u16();
            case UINT32 -> in.u32();
            case INT32 -> (long) (int) in.u32();
            case UINT64, INT64 -> in.u64();
            case FLOAT32 -> in.f32();
            case FLOAT64 -> in.f64();
            case BOOL -> {
                int b = in.u8();
                if (b > 1) {
                    throw new FormatException(where + ": BOOL byte is " + b + ", not 0 or 1");
                }
                yield b == 1;
            }
            case STRING -> in.string(where);
            case ARRAY -> throw new FormatException(where + ": unexpected nested array");
        };
    }
}
