#!/usr/bin/env python3
"""Hugging Face transformers references for `qalora generate` and `qalora eval --mmlu` (float64, CPU).

Writes one JSON file that the Java test org.qalora.driver.eval.HfReferenceTest reads:
  mmlu.shots.<k>[i]: subject, question index, the prompt text (Hendrycks et al.'s evaluate_hf.py format, written
                     here independently of the Java code), its input_ids, the four choice token ids
                     (tokenizer("A").input_ids[-1] as evaluate_hf.py takes them), their next-token logits, the
                     predicted and the true letter;
  generation[j]:     a prompt, its ids, the greedy continuation (argmax of a full forward after every token, no
                     KV cache: the oracle) and, for vocabularies of at most 1024 ids, the logits of every step.

Usage (on a machine with torch, transformers and tokenizers; the fixtures were made with transformers 5.17):
  python3 reference/hf_eval_reference.py --model fixtures/tiny-llama/model \
      --tokenizer reference/tiny-tokenizer/tokenizer.json --mmlu samples/mmlu-sample --out reference/hf-tiny-llama.json
  python3 reference/hf_eval_reference.py --model /path/to/claim/model \
      --tokenizer /path/to/claim/model/tokenizer.json --mmlu samples/mmlu-sample --out reference/hf-claim.json
"""
import argparse
import csv
import json
import os

CHOICES = ["A", "B", "C", "D"]
MAX_PROMPT_TOKENS = 2048  # evaluate_hf.py drops shots until the prompt fits 2048 tokens
GENERATION_PROMPTS = [
    "Name a color.",
    "The capital of France is",
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nReverse the letters of the word.\n\n### Response: ",
]
NEW_TOKENS = 16


def read_csv(path):
    """Rows of an MMLU CSV as text (pandas would turn numeric columns into numbers; the data is text)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    for r in rows:
        assert len(r) == 6, f"{path}: row {r} does not have 6 fields"
    return rows


def format_subject(subject):
    return "".join(" " + w for w in subject.split("_"))  # evaluate_hf.py: " " before every word


def format_example(row, include_answer):
    prompt = row[0]
    for j, letter in enumerate(CHOICES):
        prompt += "\n{}. {}".format(letter, row[j + 1])
    prompt += "\nAnswer:"
    if include_answer:
        prompt += " {}\n\n".format(row[5])
    return prompt


def gen_prompt(dev_rows, subject, k):
    prompt = "The following are multiple choice questions (with answers) about {}.\n\n".format(format_subject(subject))
    for i in range(k):
        prompt += format_example(dev_rows[i], True)
    return prompt


def mmlu(model, tok, torch, data_dir, shots):
    test_dir = os.path.join(data_dir, "test")
    subjects = sorted(f[: -len("_test.csv")] for f in os.listdir(test_dir) if f.endswith("_test.csv"))
    choice_ids = [tok.encode(c).ids[-1] for c in CHOICES]
    out = []
    for subject in subjects:
        test_rows = read_csv(os.path.join(test_dir, subject + "_test.csv"))
        dev_rows = read_csv(os.path.join(data_dir, "dev", subject + "_dev.csv"))[:shots] if shots > 0 else []
        for i, row in enumerate(test_rows):
            k = shots
            prompt = gen_prompt(dev_rows, subject, k) + format_example(row, False)
            ids = tok.encode(prompt).ids
            while len(ids) > MAX_PROMPT_TOKENS and k > 0:
                k -= 1
                prompt = gen_prompt(dev_rows, subject, k) + format_example(row, False)
                ids = tok.encode(prompt).ids
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            chosen = [float(logits[c]) for c in choice_ids]
            out.append({
                "subject": subject, "index": i, "shots_used": k, "prompt": prompt, "input_ids": ids,
                "choice_ids": choice_ids, "choice_logits": chosen,
                "prediction": CHOICES[max(range(4), key=lambda c: (chosen[c], -c))], "answer": row[5],
            })
    return out


def generation(model, tok, torch, vocab):
    out = []
    for text in GENERATION_PROMPTS:
        ids = tok.encode(text).ids
        seq, greedy, steps = list(ids), [], []
        for _ in range(NEW_TOKENS):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            nxt = int(torch.argmax(logits))  # first maximum on ties, as the Java sampler
            if vocab <= 1024:
                steps.append([float(x) for x in logits])
            greedy.append(nxt)
            seq.append(nxt)
        out.append({"prompt": text, "input_ids": ids, "greedy_ids": greedy, "step_logits": steps})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF checkpoint directory (dense)")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json")
    p.add_argument("--mmlu", required=True, help="MMLU-layout directory (test/, dev/)")
    p.add_argument("--shots", default="0,5", help="comma-separated shot counts; default 0,5")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    import tokenizers
    import torch
    import transformers

    torch.set_grad_enabled(False)
    tok = tokenizers.Tokenizer.from_file(a.tokenizer)
    # Load as stored (bf16 for the fixtures), then upcast: exact, and independent of how this transformers version
    # spells the dtype argument.
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model).to(torch.float64)
    model.eval()
    vocab = model.config.vocab_size
    result = {
        "model": a.model, "tokenizer": a.tokenizer, "mmlu_dir": a.mmlu, "dtype": "float64",
        "transformers": transformers.__version__, "torch": torch.__version__, "tokenizers": tokenizers.__version__,
        "vocab_size": vocab, "eos_token_id": tok.token_to_id("</s>"),
        "mmlu": {"shots": {str(k): mmlu(model, tok, torch, a.mmlu, int(k)) for k in a.shots.split(",")}},
        "generation": generation(model, tok, torch, vocab),
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
