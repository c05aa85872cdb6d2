// Run a model exported with `biolens export --format tfjs` as a web page or app would: TensorFlow.js loads the graph
// model (model.json + weight shards) and predicts. Usage: node predict_tfjs.mjs MODEL_FOLDER PIXELS.json, where the
// JSON holds {shape, data} of float32 pixels; prints {shape, data} of the output.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { loadGraphModel } from "@tensorflow/tfjs-converter";

const [folder, pixelsFile] = process.argv.slice(2);
const model = JSON.parse(readFileSync(join(folder, "model.json"), "utf8"));
const shards = model.weightsManifest.flatMap(group => group.paths.map(path => readFileSync(join(folder, path))));
const bytes = Buffer.concat(shards);
await tf.setBackend("cpu");
const graph = await loadGraphModel(tf.io.fromMemory({
  modelTopology: model.modelTopology, format: model.format, generatedBy: model.generatedBy,
  convertedBy: model.convertedBy, signature: model.signature,
  weightSpecs: model.weightsManifest.flatMap(group => group.weights),
  weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
}));
const pixels = JSON.parse(readFileSync(pixelsFile, "utf8"));
const output = graph.predict(tf.tensor(pixels.data, pixels.shape, "float32"));
process.stdout.write(JSON.stringify({ shape: output.shape, data: Array.from(await output.data()) }));
