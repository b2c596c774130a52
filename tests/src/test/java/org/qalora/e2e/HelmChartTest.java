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
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.qalora.driver.cli.TrainCommand;
import picocli.CommandLine;

/**
 * The Helm chart (helm/qalora) rendered and linted by an embedded Helm (helm-java), for the default values (GPU
 * executors, volcano gang scheduling), without gang scheduling, with yunikorn, and scheduled; each rendered object
 * is validated against the spark-operator CRD's v1beta2 OpenAPI schema (test resources k8s/), and every train flag
 * the chart renders must exist on {@code qalora train}.
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
