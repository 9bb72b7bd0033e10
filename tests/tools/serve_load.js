// A bounded load test of `strata serve` on loopback, with the official SDKs:
//   node serve_load.js BASE_URL MODEL_ID API_KEY CLIENTS REQUESTS_PER_CLIENT
// CLIENTS clients each send REQUESTS_PER_CLIENT requests back to back, cycling through
// OpenAI chat (streamed and not), Anthropic messages (streamed) and OpenAI completions,
// all greedy. Every request must succeed, and every answer to the same question must be
// the same text however the server batched it with others. Prints the latency
// percentiles, then "ok load".
const OpenAI = require("openai");
const Anthropic = require("@anthropic-ai/sdk");
const assert = require("assert");

const [base, model, key, clientsArg, perClientArg] = process.argv.slice(2);
const clients = Number(clientsArg), perClient = Number(perClientArg);
const openai = new OpenAI({ baseURL: base + "/v1", apiKey: key, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
const questions = ["Name three whales.", "Call me Ishmael.", "What is a harpoon?"];

async function ask(kind, question, max_tokens) {
  if (kind === 0) {
    const r = await openai.chat.completions.create(
      { model, messages: [{ role: "user", content: question }], max_tokens, temperature: 0 });
    return r.choices[0].message.content;
  }
  if (kind === 1) {
    const stream = await openai.chat.completions.create(
      { model, messages: [{ role: "user", content: question }], max_tokens, temperature: 0, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    return text;
  }
  if (kind === 2) {
    const stream = anthropic.messages.stream(
      { model, messages: [{ role: "user", content: question }], max_tokens, temperature: 0 });
    let text = "";
    stream.on("text", (t) => { text += t; });
    await stream.finalMessage();
    return text;
  }
  const r = await openai.completions.create({ model, prompt: question, max_tokens, temperature: 0 });
  return r.choices[0].text;
}

(async () => {
  const latencies = [];
  const answers = new Map();  // "kind question max_tokens" -> text
  const start = Date.now();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; i < perClient; ++i) {
      const kind = (c + i) % 4, question = questions[(c * 7 + i) % questions.length];
      const max_tokens = 6 + 4 * ((c + 2 * i) % 3);
      const t0 = Date.now();
      const text = await ask(kind, question, max_tokens);
      latencies.push(Date.now() - t0);
      // Chat and messages render the same conversation: one answer for kinds 0-2.
      const id = (kind === 3 ? "completion" : "chat") + " " + question + " " + max_tokens;
      if (answers.has(id)) {
        assert.strictEqual(text, answers.get(id), id + ": the same greedy question got two answers");
      } else {
        answers.set(id, text);
      }
    }
  }));
  const seconds = (Date.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  console.log(`${latencies.length} requests from ${clients} clients in ${seconds.toFixed(2)} s: ` +
              `latency p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms, max ${latencies[latencies.length - 1]} ms`);
  console.log("ok load");
})().catch((e) => {
  console.error("FAILED: " + (e.stack || e));
  process.exit(1);
});
