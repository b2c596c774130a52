package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.cli.TrainCommand;
import org.qalora.driver.config.TrainSetting;
import picocli.CommandLine;

/**
 * The Helm chart (helm/qalora) rendered and linted by an embedded Helm (helm-java), for the default values (GPU
 * executors, volcano gang scheduling), without gang scheduling, with yunikorn, and scheduled; each rendered object
 * is validated against the spark-operator CRD's v1beta2 OpenAPI schema (test resources k8s/), every train flag
 * the chart renders must exist on {@code qalora train}, and the {@code train:} values are the declared settings
 * ({@link TrainSetting}), each rendered as its flag.
 */
class HelmChartTest {
    private static final Path CHART = Path.of(System.getProperty("qalora.root", ".."), "helm", "qalora");
    private static final YAMLMapper YAML = new YAMLMapper();

    @Test
    void theChartLintsClean() {
        LintResult lint = new Helm(CHART).lint().strict().call();
        assertFalse(lint.isFailed(), "helm lint --strict: " + lint.getMessages());
    }

    @Test
    void defaultValuesRenderOneValidSparkApplicationWithGpusAndGangScheduling() throws IOException {
        JsonNode app = single(render(t -> t), "SparkApplication");
        assertValid(app, "sparkoperator.k8s.io_sparkapplications.yaml");
        assertEquals("default", app.at("/metadata/namespace").asText(), "namespace without --namespace");
        assertEquals("volcano", app.at("/spec/batchScheduler").asText());
        assertEquals("nvidia.com/gpu", app.at("/spec/executor/gpu/name").asText());
        assertEquals("1", app.at("/spec/sparkConf/spark.task.resource.gpu.amount").asText());
        assertTrainFlagsExist(app.at("/spec/arguments"));
    }

    @Test
    void namespaceAndSchedulerValuesReachTheObject() throws IOException {
        JsonNode noGang = single(render(t -> t.withNamespace("ml-train").set("batchScheduler", "")), "SparkApplication");
        assertValid(noGang, "sparkoperator.k8s.io_sparkapplications.yaml");
        assertEquals("ml-train", noGang.at("/metadata/namespace").asText());
        assertTrue(noGang.at("/spec/batchScheduler").isMissingNode(), "batchScheduler empty: no gang scheduling");
        JsonNode yunikorn = single(render(t -> t.set("batchScheduler", "yunikorn").set("namespace", "teams")),
                "SparkApplication");
        assertValid(yunikorn, "sparkoperator.k8s.io_sparkapplications.yaml");
        assertEquals("yunikorn", yunikorn.at("/spec/batchScheduler").asText());
        assertEquals("teams", yunikorn.at("/metadata/namespace").asText(), ".Values.namespace wins");
    }

    /** executor.javaOptions (e.g. a CPU executor's G1 region size for a 7B model) reach the executors, not the driver. */
    @Test
    void executorJavaOptionsReachOnlyTheExecutors() throws IOException {
        JsonNode plain = single(render(t -> t), "SparkApplication");
        assertEquals(plain.at("/spec/sparkConf/spark.driver.extraJavaOptions").asText(),
                plain.at("/spec/sparkConf/spark.executor.extraJavaOptions").asText(), "default: the shared flags only");
        JsonNode app = single(render(t -> t.set("executor.javaOptions", "-XX:G1HeapRegionSize=64m")),
                "SparkApplication");
        assertValid(app, "sparkoperator.k8s.io_sparkapplications.yaml");
        String driver = app.at("/spec/sparkConf/spark.driver.extraJavaOptions").asText();
        assertEquals(driver + " -XX:G1HeapRegionSize=64m",
                app.at("/spec/sparkConf/spark.executor.extraJavaOptions").asText());
        assertFalse(driver.contains("G1HeapRegionSize"), driver);
    }

    @Test
    void aScheduleRendersAScheduledSparkApplicationThatNeverOverlaps() throws IOException {
        List<JsonNode> docs = render(t -> t.set("schedule", "0 3 * * *").set("scheduleTimeZone", "UTC")
                .set("train.warmStart", "LATEST").set("train.keepVersions", "3"));
        JsonNode scheduled = single(docs, "ScheduledSparkApplication");
        assertValid(scheduled, "sparkoperator.k8s.io_scheduledsparkapplications.yaml");
        assertEquals("0 3 * * *", scheduled.at("/spec/schedule").asText());
        assertEquals("Forbid", scheduled.at("/spec/concurrencyPolicy").asText());
        assertEquals(3, scheduled.at("/spec/successfulRunHistoryLimit").asInt());
        assertEquals("UTC", scheduled.at("/spec/timeZone").asText());
        // The template is the one-off run's spec, rendered by the same helper.
        JsonNode oneOff = single(render(t -> t.set("train.warmStart", "LATEST").set("train.keepVersions", "3")),
                "SparkApplication");
        assertEquals(oneOff.get("spec"), scheduled.at("/spec/template"));
        assertTrainFlagsExist(scheduled.at("/spec/template/arguments"));
        // Each tick continues the last published adapter and keeps 3 versions.
        String args = scheduled.at("/spec/template/arguments").toString();
        assertTrue(args.contains("\"--warm-start\",\"LATEST\"") && args.contains("\"--keep-versions\",\"3\""), args);
    }

    /**
     * values.yaml's {@code train:} keys are declared settings ({@link TrainSetting}, Helm value {@code train.<key>});
     * every such declared setting is either given there or listed as an optional, commented-out key; the
     * declaration's top-level values ({@code slots}) are there too.
     */
    @Test
    void theTrainValuesAreTheDeclaredSettings() throws IOException {
        String text = Files.readString(CHART.resolve("values.yaml"));
        JsonNode values = YAML.readTree(text);
        Set<String> declared = new TreeSet<>();
        for (TrainSetting s : TrainSetting.values()) {
            s.helmValue().filter(v -> v.startsWith("train.")).ifPresent(v -> declared.add(v.substring(6)));
            s.helmValue().filter(v -> !v.startsWith("train.")).ifPresent(v -> assertTrue(values.has(v),
                    "values.yaml lacks the top-level " + v + " of " + s.option()));
        }
        Set<String> given = new TreeSet<>();
        values.get("train").fieldNames().forEachRemaining(given::add);
        given.remove("extraArgs");
        Set<String> undeclared = new TreeSet<>(given);
        undeclared.removeAll(declared);
        assertEquals(Set.of(), undeclared, "train: keys that are no train setting (declare them in TrainSetting)");
        String trainBlock = text.substring(text.indexOf("\ntrain:"), text.indexOf("\n", text.indexOf("extraArgs:")));
        for (String key : declared) {
            assertTrue(given.contains(key) || Pattern.compile("(?m)^\\s+#\\s*" + key + ":").matcher(trainBlock).find(),
                    "train." + key + " is neither in values.yaml nor listed there as an optional (commented) key");
        }
    }

    /**
     * Every declared Helm value, set in a values file, renders as its flag and reaches {@code qalora train} as the
     * value that was set: the arguments are parsed by the command itself (so an unknown flag fails too). A false
     * boolean renders nothing, which is right only while every boolean setting defaults to off; a whole number too
     * large for an int stays a whole number.
     */
    @Test
    void everyDeclaredHelmValueRendersAsItsFlag(@TempDir Path tmp) throws IOException {
        Map<String, Object> train = new LinkedHashMap<>();
        Map<String, Object> top = new LinkedHashMap<>();
        Map<TrainSetting, Object> expected = new LinkedHashMap<>();
        boolean flip = true;
        for (TrainSetting s : TrainSetting.values()) {
            if (s.helmValue().isEmpty()) {
                continue;
            }
            Object yaml;
            Object parsed;
            switch (s.kind()) {
                case STRING -> { yaml = "value-of-" + s.flag(); parsed = yaml; }
                case STRINGS -> { yaml = List.of("a-" + s.flag(), "b-" + s.flag()); parsed = yaml; }
                case INT -> { yaml = 7 + s.ordinal(); parsed = yaml; }
                case LONG -> { yaml = 12_345_678_901L; parsed = yaml; }
                case DOUBLE -> { yaml = 0.25; parsed = yaml; }
                case BOOLEAN -> {
                    assertEquals(false, s.defaultValue(""), s.flag() + ": the chart renders false as no flag");
                    yaml = flip;
                    parsed = flip ? true : null;
                    flip = !flip;
                }
                case CHOICE -> { yaml = s.choices().getLast(); parsed = yaml; }
                case OFF_OR_INT -> { yaml = 640; parsed = "640"; }
                default -> throw new AssertionError(s.kind());
            }
            (s.helmValue().get().startsWith("train.") ? train : top).put(s.camelCase(), yaml);
            expected.put(s, parsed);
        }
        assertTrue(expected.values().contains(true) && expected.values().contains(null), "both boolean values");
        top.put("train", train);
        Path file = tmp.resolve("all-settings.yaml");
        YAML.writeValue(file.toFile(), top);
        JsonNode args = single(render(t -> t.withValuesFile(file)), "SparkApplication").at("/spec/arguments");
        assertEquals("train", args.get(0).asText());
        List<String> flags = new ArrayList<>();
        for (int i = 1; i < args.size(); i++) {
            flags.add(args.get(i).asText());
        }
        CommandLine.ParseResult parsed = new CommandLine(new TrainCommand()).parseArgs(flags.toArray(String[]::new));
        expected.forEach((s, value) -> assertEquals(value, parsed.matchedOptionValue(s.option(), null),
                s.helmValue().get() + " -> " + s.option() + " in " + flags));
    }

    /** The schemas are not vacuous: a wrong type, a missing required field and a misspelt key are reported. */
    @Test
    void theSchemaCatchesABrokenObject() throws IOException {
        ObjectNode app = (ObjectNode) single(render(t -> t), "SparkApplication");
        ((ObjectNode) app.at("/spec/executor")).put("instances", "four");
        ((ObjectNode) app.get("spec")).remove("mainApplicationFile");
        ((ObjectNode) app.get("spec")).put("batchSchedular", "volcano");
        Set<ValidationMessage> errors = schema("sparkoperator.k8s.io_sparkapplications.yaml").validate(app);
        String all = errors.toString();
        assertTrue(all.contains("instances"), "a string executor.instances must be refused: " + all);
        assertTrue(all.contains("mainApplicationFile"), "a missing mainApplicationFile must be refused: " + all);
        assertTrue(all.contains("batchSchedular"), "a misspelt key must be refused: " + all);
    }

    private static List<JsonNode> render(UnaryOperator<TemplateCommand> values) throws IOException {
        String text = values.apply(new Helm(CHART).template().withName("qalora-run")).call();
        List<JsonNode> docs = new ArrayList<>();
        try (var it = YAML.readerFor(JsonNode.class).<JsonNode>readValues(text)) {
            while (it.hasNext()) {
                JsonNode d = it.next();
                if (d != null && !d.isNull() && !d.isEmpty()) {
                    docs.add(d);
                }
            }
        }
        return docs;
    }

    private static JsonNode single(List<JsonNode> docs, String kind) {
        assertEquals(1, docs.size(), "rendered objects: " + docs.stream().map(d -> d.path("kind").asText()).toList());
        assertEquals(kind, docs.getFirst().path("kind").asText());
        return docs.getFirst();
    }

    private static void assertValid(JsonNode object, String crd) throws IOException {
        Set<ValidationMessage> errors = schema(crd).validate(object);
        assertTrue(errors.isEmpty(), object.path("kind").asText() + " does not match " + crd + ": " + errors);
    }

    /** The CRD's v1beta2 OpenAPI v3 schema (a JSON Schema draft 4 dialect; the x-kubernetes keywords are ignored). */
    private static JsonSchema schema(String crd) throws IOException {
        try (InputStream in = HelmChartTest.class.getResourceAsStream("/k8s/" + crd)) {
            assertNotNull(in, "test resource k8s/" + crd);
            for (JsonNode version : YAML.readTree(in).at("/spec/versions")) {
                if (version.path("name").asText().equals("v1beta2")) {
                    JsonNode openApi = version.at("/schema/openAPIV3Schema").deepCopy();
                    dropKubernetesExtensions(openApi);
                    return JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V4).getSchema(openApi);
                }
            }
        }
        throw new AssertionError(crd + " has no v1beta2 version");
    }

    /**
     * Makes the CRD schema a strict JSON Schema, as {@code kubectl apply --validate=strict} reads it: an object schema
     * with properties refuses unknown fields unless it says {@code x-kubernetes-preserve-unknown-fields} (the API
     * server would silently drop them, so a misspelt key in the chart would vanish); then removes the
     * {@code x-kubernetes-*} annotations, which a JSON Schema validator does not know.
     */
    private static void dropKubernetesExtensions(JsonNode node) {
        if (node instanceof ObjectNode o) {
            if (o.has("properties") && !o.has("additionalProperties")
                    && !o.path("x-kubernetes-preserve-unknown-fields").asBoolean(false)) {
                o.put("additionalProperties", false);
            }
            o.properties().removeIf(e -> e.getKey().startsWith("x-kubernetes-"));
        }
        node.forEach(HelmChartTest::dropKubernetesExtensions);
    }

    /** Every --flag among the rendered arguments is an option of `qalora train` (the chart cannot drift). */
    private static void assertTrainFlagsExist(JsonNode arguments) {
        assertEquals("train", arguments.get(0).asText());
        CommandLine.Model.CommandSpec train = new CommandLine(new TrainCommand()).getCommandSpec();
        int flags = 0;
        for (JsonNode a : arguments) {
            String s = a.asText();
            if (s.startsWith("--")) {
                assertNotNull(train.findOption(s), "the chart renders " + s + ", which `qalora train` does not have");
                flags++;
            }
        }
        assertTrue(flags > 10, "only " + flags + " flags rendered: " + arguments);
    }
}
