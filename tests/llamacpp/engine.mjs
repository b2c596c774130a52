// Runs an exported GGUF file in llama.cpp through node-llama-cpp (its prebuilt CPU binaries; nothing is built or
// downloaded) and reports what the engine does with it, for LlamaCppEngineTest to compare with our own answers.
//
//   node engine.mjs REQUEST.json RESPONSE.json
//
// REQUEST:  {model, threads, contextSize, maxNewTokens, probabilities: FILE|null, tokenize: [text], prompts: [text]}
// RESPONSE: {engine, vocabulary, tokenize: [{ids, idsWithSpecial}], generate: [{promptIds, ids, rows, text}]}
// With `probabilities`, the engine's next-token distribution at every generated step is appended to FILE as
// little-endian float32 rows of the vocabulary size (prompt by prompt, step by step; `rows` per prompt: one per
// generated token, and one for the EOS when the engine hands it out rather than stopping before it).
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync, writeFileSync, openSync, writeSync, closeSync} from "node:fs";

const [requestFile, responseFile] = process.argv.slice(2);
if (!requestFile || !responseFile) {
    console.error("usage: node engine.mjs REQUEST.json RESPONSE.json");
    process.exit(2);
}
const req = JSON.parse(readFileSync(requestFile, "utf8"));

// gpu: false and build: "never": the prebuilt CPU binaries or a clear failure, never a compile or a download.
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: req.model});
const nVocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
const bos = model.tokens.bos;
const eos = model.tokens.eos;

const response = {
    engine: {
        nodeLlamaCpp: "3.21.1",
        llamaCpp: llama.llamaCppRelease,
        buildType: llama.buildType,
        gpu: llama.gpu,
        cpu: process.arch
    },
    vocabulary: {size: nVocab, bos, eos, prependBos: model.tokens.shouldPrependBosToken,
        appendEos: model.tokens.shouldAppendEosToken},
    tokenize: [],
    generate: []
};

// Special tokens written in the text ("</s>") are parsed as HF does; BOS is added when the file says so.
for (const text of req.tokenize) {
    const ids = Array.from(model.tokenize(text, true));
    response.tokenize.push({ids, idsWithSpecial: model.tokens.shouldPrependBosToken ? [bos, ...ids] : ids});
}

// Default settings, as a user gets them (K and V cached in F16: measured to change nothing visible here).
const context = await model.createContext({contextSize: req.contextSize, threads: req.threads, sequences: 1});
const sequence = context.getSequence();
const probabilities = req.probabilities ? openSync(req.probabilities, "w") : null;
for (const prompt of req.prompts) {
    await sequence.clearHistory();
    const body = Array.from(model.tokenize(prompt, true));
    const promptIds = model.tokens.shouldPrependBosToken ? [bos, ...body] : body;
    const ids = [];
    let rows = 0;
    // temperature 0: greedy, the arg-max of the logits (no repeat penalty, no top-k: sampling options off)
    const steps = sequence.evaluateWithMetadata(promptIds, {probabilities: probabilities !== null}, {temperature: 0});
    for await (const step of steps) {
        if (probabilities !== null) {
            const row = new Float32Array(nVocab);
            for (const [token, p] of step.probabilities) {
                row[token] = p;
            }
            writeSync(probabilities, new Uint8Array(row.buffer));
            rows++;
        }
        if (step.token === eos) {
            break;
        }
        ids.push(step.token);
        if (ids.length >= req.maxNewTokens) {
            break;
        }
    }
    // the continuation's text as the engine prints it: the text of prompt + continuation after the prompt's text
    const promptText = model.detokenize(body);
    const fullText = model.detokenize([...body, ...ids]);
    response.generate.push({promptIds, ids, rows, text: fullText.startsWith(promptText) ? fullText.slice(promptText.length)
        : null, fullText});
}
if (probabilities !== null) {
    closeSync(probabilities);
}
writeFileSync(responseFile, JSON.stringify(response));
await context.dispose();
await model.dispose();
await llama.dispose();
