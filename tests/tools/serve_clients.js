// Real clients against `strata serve`: the official OpenAI (openai@4) and Anthropic
// (@anthropic-ai/sdk) SDKs, plus plain fetch for what the SDKs cannot send. Run by
// tests/tools/serve_cli_test.cc with NODE_PATH at scripts/setup.sh's cache:
//   node serve_clients.js BASE_URL MODEL_ID API_KEY
// Prints one line per check and exits non-zero at the first that fails.
const OpenAI = require("openai");
const Anthropic = require("@anthropic-ai/sdk");
const assert = require("assert");

const [base, model, key] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: base + "/v1", apiKey: key, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
// ignore_eos (a llama.cpp-server extension strata accepts) keeps the long generations
// below going until the client leaves, however soon the synthetic model says EOS.
const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Name three whales." },
];

async function check(name, body) {
  await body();
  console.log("ok " + name);
}

async function expectStatus(status, promise) {
  try {
    await promise;
  } catch (e) {
    assert.strictEqual(e.status, status, "wanted HTTP " + status + ", got " + e.status + ": " + e.message);
    return e;
  }
  assert.fail("wanted HTTP " + status + ", the request succeeded");
}

async function raw(path, init) {
  const r = await fetch(base + path, init);
  return { status: r.status, text: await r.text() };
}

// strata_cancelled_total once it reaches `n`, or after 5 s.
async function cancelledReaches(n) {
  let cancelled = 0;
  for (let i = 0; i < 100 && cancelled < n; ++i) {
    await new Promise((r) => setTimeout(r, 50));
    const m = await raw("/metrics", { headers: { "x-api-key": key } });
    cancelled = Number(/strata_cancelled_total (\d+)/.exec(m.text)[1]);
  }
  return cancelled;
}

(async () => {
  let greedy;
  await check("models.list names the model", async () => {
    const list = await openai.models.list();
    assert.deepStrictEqual(list.data.map((m) => m.id), [model]);
  });
  await check("chat.completions: greedy, max_tokens, usage", async () => {
    const r = await openai.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
    assert.strictEqual(r.object, "chat.completion");
    assert.strictEqual(r.choices[0].finish_reason, "length");
    assert.strictEqual(r.usage.completion_tokens, 8);
    assert.ok(r.usage.prompt_tokens > 4);
    assert.strictEqual(typeof r.choices[0].message.content, "string");
    greedy = r;
  });
  await check("the same request again reuses the prompt cache, same answer", async () => {
    const r = await openai.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
    assert.strictEqual(r.choices[0].message.content, greedy.choices[0].message.content);
    assert.strictEqual(r.usage.prompt_tokens_details.cached_tokens, r.usage.prompt_tokens - 1);
  });
  await check("chat.completions stream with include_usage: the same text, then usage", async () => {
    const stream = await openai.chat.completions.create({
      model, messages, max_tokens: 8, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = "", finish = null, usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta.content || "";
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.strictEqual(text, greedy.choices[0].message.content);
    assert.strictEqual(finish, "length");
    assert.strictEqual(usage.completion_tokens, 8);
  });
  await check("stop strings end the answer before them", async () => {
    const content = greedy.choices[0].message.content;
    assert.ok([...content].length >= 2, "the greedy answer is too short to cut: " + JSON.stringify(content));
    const stop = [...content][1];  // the second character: the answer stops at its first use
    const r = await openai.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0, stop: [stop] });
    assert.strictEqual(r.choices[0].finish_reason, "stop");
    assert.strictEqual(r.choices[0].message.content, content.slice(0, content.indexOf(stop)));
  });
  await check("completions: text_completion with max_tokens", async () => {
    const r = await openai.completions.create({ model, prompt: "Call me Ishmael.", max_tokens: 4, temperature: 0 });
    assert.strictEqual(r.object, "text_completion");
    assert.strictEqual(r.choices[0].finish_reason, "length");
    assert.strictEqual(r.usage.completion_tokens, 4);
  });
  let anthropicText;
  await check("anthropic messages.create: the same answer as OpenAI's chat", async () => {
    const r = await anthropic.messages.create({
      model, max_tokens: 8, temperature: 0, system: "You are terse.",
      messages: [{ role: "user", content: "Name three whales." }],
    });
    assert.strictEqual(r.type, "message");
    assert.strictEqual(r.stop_reason, "max_tokens");
    assert.strictEqual(r.usage.output_tokens, 8);
    anthropicText = r.content.filter((b) => b.type === "text").map((b) => b.text).join("");
    assert.strictEqual(anthropicText, greedy.choices[0].message.content);
  });
  await check("anthropic messages.stream: events the SDK assembles into the same message", async () => {
    const stream = anthropic.messages.stream({
      model, max_tokens: 8, temperature: 0, system: "You are terse.",
      messages: [{ role: "user", content: "Name three whales." }],
    });
    const final = await stream.finalMessage();
    assert.strictEqual(final.content.filter((b) => b.type === "text").map((b) => b.text).join(""), anthropicText);
    assert.strictEqual(final.stop_reason, "max_tokens");
  });
  await check("errors: unknown model 404, bad value 400 naming the field, both APIs", async () => {
    const e1 = await expectStatus(404, openai.chat.completions.create({ model: "nope", messages, max_tokens: 2 }));
    assert.match(e1.message, /nope/);
    await expectStatus(404, anthropic.messages.create({ model: "nope", max_tokens: 2, messages: [{ role: "user", content: "x" }] }));
    const e2 = await expectStatus(400, openai.chat.completions.create({ model, messages, temperature: 5 }));
    assert.strictEqual(e2.param, "temperature");
    await expectStatus(400, openai.chat.completions.create({ model, messages, max_tokens: -3 }));
    await expectStatus(400, anthropic.messages.create({ model, max_tokens: 2, messages: [{ role: "tool", content: "x" }] }));
  });
  await check("raw HTTP: no key 401, malformed JSON 400, a body over --max-body 413, unknown path 404", async () => {
    const post = (body, headers) => raw("/v1/chat/completions", {
      method: "POST", body, headers: { "content-type": "application/json", ...headers },
    });
    assert.strictEqual((await post("{}", {})).status, 401);
    const bad = await post("{not json", { authorization: "Bearer " + key });
    assert.strictEqual(bad.status, 400);
    assert.match(JSON.parse(bad.text).error.message, /not valid JSON/);
    const big = await post(JSON.stringify({ model, messages: [{ role: "user", content: "x".repeat(2 << 20) }] }),
                           { authorization: "Bearer " + key });
    assert.strictEqual(big.status, 413);
    assert.strictEqual((await raw("/v2/nothing", { headers: { "x-api-key": key } })).status, 404);
    assert.strictEqual((await raw("/health", {})).status, 200);
  });
  await check("a second request while the slot is busy and the queue is full gets 429; a client that leaves is cancelled", async () => {
    const controller = new AbortController();
    const long = await openai.chat.completions.create(
      { model, messages, max_tokens: 4000, temperature: 0, stream: true, ignore_eos: true },
      { signal: controller.signal });
    const it = long[Symbol.asyncIterator]();
    await it.next();  // generating now
    await expectStatus(429, openai.chat.completions.create({ model, messages, max_tokens: 2 }));
    controller.abort();
    try { while (!(await it.next()).done); } catch (e) { /* aborted */ }
    // The server notices at its next write and frees the slot.
    assert.strictEqual(await cancelledReaches(1), 1);
    const after = await openai.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
    assert.strictEqual(after.choices[0].message.content, greedy.choices[0].message.content);
  });
  await check("a client that leaves before a whole (non-streamed) answer is cancelled too", async () => {
    const controller = new AbortController();
    const pending = openai.chat.completions.create(
      { model, messages, max_tokens: 4000, temperature: 0, ignore_eos: true }, { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    await pending.catch(() => {});
    assert.strictEqual(await cancelledReaches(2), 2);
  });
  await check("tools on a model whose template has no tool format: a 400 naming the field", async () => {
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
    const e = await expectStatus(400, openai.chat.completions.create({ model, messages, tools, max_tokens: 2 }));
    assert.strictEqual(e.error.param, "tools");
    await expectStatus(400, anthropic.messages.create({
      model, max_tokens: 2, messages: [{ role: "user", content: "hi" }],
      tools: [{ name: "get_weather", input_schema: { type: "object" } }] }));
  });
  await check("metrics: Prometheus text with the tier figures", async () => {
    const m = (await raw("/metrics", { headers: { authorization: "Bearer " + key } })).text;
    for (const name of ["strata_requests_total", "strata_completion_tokens_total", "strata_prompt_tokens_cached_total",
                        "strata_decode_tokens_per_second", "strata_expert_hits_total", "strata_expert_read_mib_per_token"]) {
      assert.match(m, new RegExp("^" + name + " ", "m"), name);
    }
  });
})().catch((e) => {
  console.error("FAILED: " + (e.stack || e));
  process.exit(1);
});
