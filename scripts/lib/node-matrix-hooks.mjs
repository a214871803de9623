// Loaded with `node --import` by scripts/node-matrix when the Node under test has another native
// ABI than the one node_modules was installed with: @confluentinc/kafka-javascript's binding is a
// NAN addon (compiled per Node ABI, not N-API), so its load of the binary installed for the other
// ABI is sent to the one scripts/node-matrix compiled for this Node. Nothing else is changed.
import { registerHooks } from 'node:module';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';

const addon = process.env.AGENTTRACE_MATRIX_KAFKA_ADDON;
if (addon) {
  const url = pathToFileURL(addon).href;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (basename(specifier) === 'confluent-kafka-javascript.node') return { url, shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}
