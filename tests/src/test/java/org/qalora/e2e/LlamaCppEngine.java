package org.qalora.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * llama.cpp, run through the small node script {@code tests/llamacpp/engine.mjs} (node-llama-cpp 3.21.1, its prebuilt
 * CPU binaries). Finds node and npm on the PATH, installs the pinned node_modules with {@code npm ci} when they are
 * missing (as .ci/run does), and returns the script's JSON answer and the probability rows it wrote.
 */
final class LlamaCppEngine {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;
    private final String node;

    private LlamaCppEngine(Path dir, String node) {
        this.dir = dir;
        this.node = node;
    }

    /** Why the engine cannot run here (node or npm missing), or null when it can. */
    static String unavailableReason() {
        List<String> missing = new ArrayList<>();
        for (String tool : List.of("node", "npm")) {
            if (onPath(tool) == null) {
                missing.add(tool);
            }
        }
        return missing.isEmpty() ? null : String.join(" and ", missing) + " not found on the PATH: install Node.js 20+"
                + " to run the exported GGUF file in llama.cpp (node-llama-cpp)";
    }

    /** The engine in {@code tests/llamacpp} of the repository, its node_modules installed if needed. */
    static LlamaCppEngine open(Path repo, Path logDir) throws IOException, InterruptedException {
        Path dir = repo.resolve("tests/llamacpp");
        if (!Files.isDirectory(dir.resolve("node_modules/node-llama-cpp"))) {
            // --ignore-scripts: node-llama-cpp's postinstall would probe for GPUs and may try to build llama.cpp;
            // engine.mjs asks for the prebuilt CPU binaries only.
            run(dir, logDir.resolve("npm-ci.log"), 15, onPath("npm"), "ci", "--ignore-scripts", "--no-audit", "--no-fund");
        }
        return new LlamaCppEngine(dir, onPath("node"));
    }

    /** The script's answer to a request, and the probability rows ([step][vocab]) when it was asked for them. */
    record Answer(JsonNode json, float[][] probabilities) {}

    Answer run(Map<String, Object> request, Path work, int vocab) throws IOException, InterruptedException {
        Map<String, Object> req = new LinkedHashMap<>(request);
        Path probs = work.resolve("probabilities.f32");
        req.put("probabilities", probs.toString());
        Path reqFile = work.resolve("request.json"), respFile = work.resolve("response.json");
        JSON.writeValue(reqFile.toFile(), req);
        run(dir, work.resolve("engine.log"), 5, node, "engine.mjs", reqFile.toString(), respFile.toString());
        JsonNode json = JSON.readTree(respFile.toFile());
        byte[] bytes = Files.readAllBytes(probs);
        int rows = bytes.length / 4 / vocab;
        float[][] p = new float[rows][vocab];
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        for (float[] row : p) {
            b.asFloatBuffer().get(row);
            b.position(b.position() + 4 * vocab);
        }
        return new Answer(json, p);
    }

    private static void run(Path dir, Path log, int minutes, String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
        if (!p.waitFor(minutes, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + " did not finish in " + minutes + " minutes");
        }
        if (p.exitValue() != 0) {
            String out = Files.readString(log, StandardCharsets.UTF_8);
            throw new AssertionError("in " + dir + ": " + String.join(" ", command) + " exited with " + p.exitValue()
                    + ":\n" + (out.length() > 4000 ? out.substring(out.length() - 4000) : out));
        }
    }

    private static String onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(d.isEmpty() ? "." : d, tool);
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }
}
