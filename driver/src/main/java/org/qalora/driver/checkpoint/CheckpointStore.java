package org.qalora.driver.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.rounds.RoundMetrics;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;

/**
 * The checkpoint directory of a run, on any Hadoop filesystem:
 * <pre>
 *   round-00000/               committed initial state: adapter_state.safetensors + _MANIFEST.json
 *   round-00003/               committed state after round 3: adapter_state-00001-of-0000P.safetensors ... (one
 *                              part per key range, written by the executors that averaged them) + _MANIFEST.json
 *   updates-00004/slot-00001.safetensors   slot 1's update while round 4 runs (task-written, then renamed)
 *   _tmp-round-00004-&lt;uuid&gt;/  a commit in progress (ignored by readers)
 *   metrics.jsonl              one line per committed round
 * </pre>
 * A round is committed by writing a fresh temporary directory (state first, {@code _MANIFEST.json} last) and
 * renaming it to {@code round-NNNNN}, a name that does not exist yet. Only directories whose manifest parses and
 * whose files match its checksums count as committed, so a crash at any point leaves either the old or the new
 * round, never a half one.
 */
public final class CheckpointStore {
    public static final String STATE_FILE = "adapter_state.safetensors";
    public static final String MANIFEST = "_MANIFEST.json";
    public static final String METRICS = "metrics.jsonl";
    private static final Pattern ROUND_DIR = Pattern.compile("round-(\\d{5,})");
    private static final Pattern STATE_PART = Pattern.compile("adapter_state-\\d{5}-of-\\d{5}\\.safetensors");
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final ObjectMapper JSON_LINE = new ObjectMapper();

    /**
     * A committed round: its directory, manifest and state, stored as one file ({@value #STATE_FILE}: round 0, and
     * rounds of earlier versions) or as part files, each a contiguous key range, in manifest (= key) order.
     */
    public record Committed(int round, Path dir, RoundManifest manifest) {
        /** The state's files in key order. */
        public List<Path> stateFiles() {
            return stateNames(manifest.files()).stream().map(n -> new Path(dir, n)).toList();
        }

        /** The SHA-256 of each of {@link #stateFiles()}. */
        public List<String> stateSha256s() {
            return stateNames(manifest.files()).stream().map(n -> manifest.files().get(n).sha256()).toList();
        }

        /**
         * The state's identity: its file's SHA-256 when it is one file, else the SHA-256 of its parts' names and
         * SHA-256s in order. Caches key on it, and the published version is named after it.
         */
        public String stateId() {
            List<String> names = stateNames(manifest.files());
            if (names.size() == 1 && names.get(0).equals(STATE_FILE)) {
                return manifest.files().get(STATE_FILE).sha256();
            }
            java.security.MessageDigest md = Storage.sha256();
            for (String n : names) {
                md.update((n + " " + manifest.files().get(n).sha256() + "\n").getBytes(StandardCharsets.UTF_8));
            }
            return java.util.HexFormat.of().formatHex(md.digest());
        }
    }

    /** The name of part {@code part} (0-based) of {@code parts} of a round's state. */
    public static String partFileName(int part, int parts) {
        return String.format("adapter_state-%05d-of-%05d.safetensors", part + 1, parts);
    }

    private static List<String> stateNames(Map<String, RoundManifest.FileEntry> files) {
        if (files.containsKey(STATE_FILE)) {
            return List.of(STATE_FILE);
        }
        return files.keySet().stream().filter(n -> STATE_PART.matcher(n).matches()).sorted().toList();
    }

    private final Storage storage;
    private final Path dir;
    private final Consumer<String> log;
    private final HoldPoint hold;

    public CheckpointStore(Storage storage, Path dir, Consumer<String> log) {
        this(storage, dir, log, HoldPoint.none());
    }

    /** {@code hold}: the test hook that can stop the driver right after a round's rename. */
    public CheckpointStore(Storage storage, Path dir, Consumer<String> log, HoldPoint hold) {
        this.storage = storage;
        this.dir = dir;
        this.log = log;
        this.hold = hold;
    }

    public Path dir() { return dir; }

    public Path roundDir(int round) { return new Path(dir, String.format("round-%05d", round)); }

    public Path updatesDir(int round) { return new Path(dir, String.format("updates-%05d", round)); }

    public static String updateFileName(int slot) { return String.format("slot-%05d.safetensors", slot); }

    /** The highest committed round whose manifest and checksums are valid; torn or foreign directories are skipped. */
    public Optional<Committed> latestCommitted() {
        if (!storage.exists(dir)) {
            return Optional.empty();
        }
        List<Integer> rounds = new ArrayList<>();
        for (FileStatus st : list(dir)) {
            Matcher m = ROUND_DIR.matcher(st.getPath().getName());
            if (st.isDirectory() && m.matches()) {
                rounds.add(Integer.parseInt(m.group(1)));
            }
        }
        rounds.sort(Comparator.reverseOrder());
        for (int r : rounds) {
            Optional<Committed> c = validate(r);
            if (c.isPresent()) {
                return c;
            }
        }
        return Optional.empty();
    }

    /** Round {@code round} if its directory holds a valid manifest whose checksums match. */
    public Optional<Committed> validate(int round) {
        Path rd = roundDir(round);
        Path mf = new Path(rd, MANIFEST);
        if (!storage.exists(mf)) {
            log.accept("ignoring " + rd + ": no " + MANIFEST + " (a torn commit)");
            return Optional.empty();
        }
        RoundManifest manifest;
        try {
            manifest = JSON.readValue(storage.readAll(mf), RoundManifest.class);
        } catch (IOException e) {
            log.accept("ignoring " + rd + ": unreadable " + MANIFEST + ": " + e.getMessage());
            return Optional.empty();
        }
        if (!RoundManifest.FORMAT.equals(manifest.format()) || manifest.round() != round
                || manifest.files() == null || stateNames(manifest.files()).isEmpty()) {
            log.accept("ignoring " + rd + ": its manifest is not a round-" + round + " manifest");
            return Optional.empty();
        }
        Optional<String> mismatch = storage.firstMismatch(rd, manifest.files());
        if (mismatch.isPresent()) {
            log.accept("ignoring " + rd + ": " + mismatch.get());
            return Optional.empty();
        }
        return Optional.of(new Committed(round, rd, manifest));
    }

    public AdapterTensors loadState(Committed c) {
        return AdapterStateFile.read(storage, c.stateFiles()).state();
    }

    /**
     * Commits {@code state} as round {@code round} ({@code metrics}, null for round 0, go into its manifest; the
     * caller logs them to {@code metrics.jsonl} with {@link #appendMetrics}). A leftover directory of that name without a valid manifest
     * (e.g. copied in by hand, or written by a foreign tool) is moved aside to {@code _torn-...}, never deleted.
     */
    public Committed commit(int round, AdapterTensors state, String planHash, String configHash, RoundMetrics metrics) {
        Path tmp = beginCommit(round);
        Path stateFile = new Path(tmp, STATE_FILE);
        String sha = AdapterStateFile.write(storage, stateFile, "_tmp-" + STATE_FILE, state,
                Map.of("round", Integer.toString(round)));
        Map<String, RoundManifest.FileEntry> files = new LinkedHashMap<>();
        files.put(STATE_FILE, new RoundManifest.FileEntry(storage.length(stateFile), sha));
        return commitPrepared(round, tmp, files, state.step(), planHash, configHash, metrics);
    }

    /**
     * A fresh temporary directory for round {@code round}'s commit, ignored by readers: the tasks that average the
     * round write their part files into it, then {@link #commitPrepared} commits it.
     */
    public Path beginCommit(int round) {
        Path tmp = Storage.temporarySibling(roundDir(round));
        storage.mkdirs(tmp);
        return tmp;
    }

    /**
     * Commits the directory {@code tmp} of {@link #beginCommit}, holding the state files {@code files} (in key
     * order, with the sizes and SHA-256s their writers computed while writing), as round {@code round} at optimizer
     * step {@code step}: writes {@code _MANIFEST.json} last, then renames the directory to {@code round-NNNNN}.
     * A leftover directory of that name without a valid manifest (e.g. copied in by hand, or written by a foreign
     * tool) is moved aside to {@code _torn-...}, never deleted.
     */
    public Committed commitPrepared(int round, Path tmp, Map<String, RoundManifest.FileEntry> files, long step,
                                    String planHash, String configHash, RoundMetrics metrics) {
        Path target = roundDir(round);
        if (stateNames(files).size() != files.size() || files.isEmpty()) {
            throw new IllegalArgumentException("round " + round + ": " + files.keySet() + " are not the files of one"
                    + " state (" + STATE_FILE + ", or parts named like " + partFileName(0, 2) + ")");
        }
        for (Map.Entry<String, RoundManifest.FileEntry> f : files.entrySet()) {
            Path p = new Path(tmp, f.getKey());
            if (!storage.exists(p) || storage.length(p) != f.getValue().bytes()) {
                throw new IllegalStateException("cannot commit round " + round + ": " + p + (storage.exists(p)
                        ? " has " + storage.length(p) + " bytes, its writer reported " + f.getValue().bytes()
                        : " is missing"));
            }
        }
        RoundManifest manifest = new RoundManifest(RoundManifest.FORMAT, round, step, planHash, configHash,
                new LinkedHashMap<>(files), metrics);
        try {
            storage.writeAtomically(new Path(tmp, MANIFEST), JSON.writeValueAsBytes(manifest));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot encode the manifest of round " + round, e);
        }
        if (storage.exists(target)) {
            if (validate(round).isPresent()) {
                storage.deleteQuietly(tmp);
                throw new IllegalStateException(target + " is already committed: is another run writing to "
                        + dir + " at the same time?");
            }
            Path aside = new Path(dir, "_torn-" + target.getName() + "-" + UUID.randomUUID());
            log.accept("moving the torn directory " + target + " aside to " + aside);
            if (!storage.renameToFresh(target, aside)) {
                throw new IllegalStateException("cannot move the torn directory " + target + " aside");
            }
        }
        if (!storage.renameToFresh(tmp, target)) {
            throw new IllegalStateException("cannot rename " + tmp + " to " + target);
        }
        Committed committed = new Committed(round, target, manifest);
        hold.reached(HoldPoint.roundRenamed(round));
        return committed;
    }

    /** The rounds that have a line in {@code metrics.jsonl}. */
    public java.util.Set<Integer> metricsRounds() {
        Path file = new Path(dir, METRICS);
        java.util.Set<Integer> rounds = new java.util.TreeSet<>();
        if (storage.exists(file)) {
            for (String line : storage.readString(file).split("\n")) {
                try {
                    if (!line.isBlank() && JSON_LINE.readTree(line).has("round")) {
                        rounds.add(JSON_LINE.readTree(line).get("round").asInt());
                    }
                } catch (IOException e) {
                    log.accept("ignoring an unreadable line of " + file + ": " + e.getMessage());
                }
            }
        }
        return rounds;
    }

    /**
     * Rewrites {@code metrics.jsonl} atomically with every earlier round's line plus this one (HDFS has no cheap,
     * safe append; the file is small). Lines of rounds at or after this one (left by a run that crashed after
     * logging) are dropped so a resumed run does not log a round twice.
     */
    public void appendMetrics(RoundMetrics metrics) {
        Path file = new Path(dir, METRICS);
        StringBuilder out = new StringBuilder();
        if (storage.exists(file)) {
            for (String line : storage.readString(file).split("\n")) {
                if (line.isBlank()) {
                    continue;
                }
                try {
                    int r = JSON_LINE.readTree(line).path("round").asInt(Integer.MAX_VALUE);
                    if (r < metrics.round()) {
                        out.append(line).append('\n');
                    }
                } catch (IOException e) {
                    log.accept("dropping an unreadable line of " + file + ": " + e.getMessage());
                }
            }
        }
        try {
            out.append(JSON_LINE.writeValueAsString(metrics)).append('\n');
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        storage.writeAtomically(file, out.toString().getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Puts the directory in the state an uninterrupted run would have left after committing {@code current} (null:
     * nothing committed yet), for a driver that restarts after a crash (a SIGKILL skips every cleanup):
     * <ul>
     *   <li>{@code _tmp-*} leftovers (a commit's directory, a metrics.jsonl rewrite) are deleted: readers ignore
     *   them, but each is a copy of the adapter state, and the run owns this directory;
     *   <li>(a crash between a round's rename and its metrics line leaves metrics.jsonl without that round: the
     *   rounds loop logs it on resume, after computing its held-out loss, see TrainingRounds);
     *   <li>a crash after the last round's commit but before its pruning left older rounds: they are pruned now.
     * </ul>
     */
    public void tidyAfterRestart(Committed current, int keep) {
        if (!storage.exists(dir)) {
            return;
        }
        for (FileStatus st : list(dir)) {
            if (st.getPath().getName().startsWith("_tmp-")) {
                log.accept("removing " + st.getPath() + ", left by a run that stopped while writing it");
                storage.delete(st.getPath());
            }
        }
        if (current == null) {
            return;
        }
        prune(current.round(), keep);
    }

    /** Removes committed rounds older than {@code keep} rounds before {@code latest}, and finished update dirs. */
    public void prune(int latest, int keep) {
        for (FileStatus st : list(dir)) {
            String name = st.getPath().getName();
            Matcher m = ROUND_DIR.matcher(name);
            if (m.matches() && Integer.parseInt(m.group(1)) <= latest - keep) {
                storage.delete(st.getPath());
            } else if (name.startsWith("updates-") && Integer.parseInt(name.substring(8)) <= latest) {
                storage.delete(st.getPath());
            }
        }
    }

    private List<FileStatus> list(Path p) {
        try {
            return List.of(storage.fs(p).listStatus(p));
        } catch (IOException e) {
            throw Storage.failure("list", p, e);
        }
    }
}
