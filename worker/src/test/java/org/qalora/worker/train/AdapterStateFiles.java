package org.qalora.worker.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.PeftKeys;
import org.qalora.worker.adapter.QaloraConfig;

/**
 * Test helper: an {@link AdapterState} round-tripped through one safetensors file, so the worker's tests can check a
 * trainer resumes from a state read back from disk. Production checkpoints are the driver's {@code AdapterStateFile}.
 */
public final class AdapterStateFiles {
    private AdapterStateFiles() {}

    /** Value of the {@code format} metadata entry of a state file. */
    public static final String FORMAT = "qalora-adapter-state/1";
    private static final String M_PREFIX = "adam_m.";
    private static final String V_PREFIX = "adam_v.";

    /**
     * Writes the whole state to one safetensors file, atomically: tensors {@code <key>} (weights),
     * {@code adam_m.<key>}, {@code adam_v.<key>} (float32), metadata {@code format}, {@code step} and
     * {@code adapter_config} (the adapter_config.json text).
     */
    public static void write(AdapterState state, String location) {
        SafetensorsWriter w = new SafetensorsWriter();
        w.metadata("format", FORMAT);
        w.metadata("step", Long.toString(state.step()));
        w.metadata("adapter_config", PeftAdapter.configJson(state.config(), null));
        for (String k : state.keys()) {
            w.addFloats(k, DType.F32, state.weights(k), state.shape(k));
            w.addFloats(M_PREFIX + k, DType.F32, state.adamM(k), state.shape(k));
            w.addFloats(V_PREFIX + k, DType.F32, state.adamV(k), state.shape(k));
        }
        try {
            w.write(location);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write adapter state " + location + ": " + e.getMessage(), e);
        }
    }

    /** Reads a file written by {@link #write(AdapterState, String)}. */
    public static AdapterState read(String location) {
        try (SafetensorsFile f = SafetensorsFile.open(location)) {
            Map<String, String> meta = f.metadata();
            if (!FORMAT.equals(meta.get("format"))) {
                throw new IllegalArgumentException(location + ": not an adapter state file (metadata format is "
                        + meta.get("format") + ", expected " + FORMAT + ")");
            }
            QaloraConfig cfg = PeftAdapter.parseConfig(meta.get("adapter_config"), location + " (adapter_config)");
            long step = Long.parseLong(meta.get("step"));
            LinkedHashMap<String, long[]> shapes = new LinkedHashMap<>();
            Map<String, float[]> w = new LinkedHashMap<>(), m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
            List<String> names = new ArrayList<>(f.names());
            for (String name : names) {
                if (name.startsWith(M_PREFIX) || name.startsWith(V_PREFIX)) {
                    continue;
                }
                PeftKeys.parse(name);
                shapes.put(name, f.info(name).shape());
                w.put(name, f.floats(name));
                for (String prefix : new String[] {M_PREFIX, V_PREFIX}) {
                    if (!f.contains(prefix + name)) {
                        throw new IllegalArgumentException(location + ": tensor " + prefix + name + " is missing");
                    }
                }
                m.put(name, f.floats(M_PREFIX + name));
                v.put(name, f.floats(V_PREFIX + name));
            }
            // key order is part of the contract: sort by (layer, projection, A/B) as states are created
            LinkedHashMap<String, long[]> ordered = new LinkedHashMap<>();
            shapes.keySet().stream().sorted(java.util.Comparator.comparing((String k) -> PeftKeys.parse(k).layer())
                    .thenComparing(k -> PeftKeys.parse(k).projection()).thenComparing(k -> !PeftKeys.parse(k).isA()))
                    .forEach(k -> ordered.put(k, shapes.get(k)));
            return new AdapterState(cfg, ordered, w, m, v, step);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read adapter state " + location + ": " + e.getMessage(), e);
        }
    }

}
