// The command-line smoke of scripts/node-matrix, run by the Node under test (process.execPath)
// against the local stack (`eval "$(scripts/stack env)"`): every bin's --help, then one real
// session end to end: the tracer writes it to a fresh topic (one field large enough to go to S3),
// kshark replays it from Kafka with the field fetched back, kdiff compares it with itself.
// Cleans up its topic and S3 object. Prints one line per check; exits 1 on the first failure.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { AgentTracer } from '@agenttrace/tracer';
import { KafkaAdmin, createS3Client, s3Sdk } from '@agenttrace/common';

const BINS = [
  ['kshark', 'packages/kshark/bin/kshark.js'],
  ['kdiff', 'packages/kdiff/bin/kdiff.js'],
  ['kafmirror', 'packages/kafmirror/bin/kafmirror.js'],
  ['agenttrace-dashboard', 'packages/dashboard-consumer/bin/agenttrace-dashboard.js'],
  ['agenttrace-archiver', 'packages/archiver/bin/agenttrace-archiver.js'],
];

function run(args, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function check(ok, what, detail) {
  if (!ok) {
    process.stdout.write(`FAIL ${what}${detail ? `: ${detail}` : ''}\n`);
    process.exitCode = 1;
    throw new Error(what);
  }
  process.stdout.write(`ok   ${what}\n`);
}

const env = process.env;
if (!env.AGENTTRACE_BROKERS || !env.AGENTTRACE_S3_ENDPOINT || !env.AWS_ACCESS_KEY_ID) {
  process.stderr.write('node-matrix smoke: the stack environment is missing; run eval "$(scripts/stack env)" first\n');
  process.exit(2);
}

const id = `${process.versions.node.split('.')[0]}-${randomBytes(4).toString('hex')}`;
const topic = `node-matrix-${id}`;
const sessionId = `sess_node_matrix_${id}`;
const s3 = { endpoint: env.AGENTTRACE_S3_ENDPOINT, bucket: env.AGENTTRACE_S3_BUCKET ?? 'agenttrace', prefix: `node-matrix/${id}` };
const brokers = env.AGENTTRACE_BROKERS.split(',');
const admin = new KafkaAdmin({ brokers });

try {
  for (const [name, bin] of BINS) {
    const r = await run([bin, '--help']);
    check(r.code === 0 && r.stdout.startsWith(`Usage: ${name}`), `${name} --help`, `exit ${r.code}, stderr ${r.stderr.slice(0, 300)}`);
  }

  const big = 'x'.repeat(20_000);
  const tracer = new AgentTracer({ sessionId, agentId: 'node-matrix', kafka: { brokers }, topic, topicPartitions: 1, s3, handleExit: false });
  await tracer.trackToolCall('fetch.page', { url: 'https://example.com' }, async () => ({ body: big }));
  tracer.logDecision({ action: 'answer', reasoning: 'the page had it', confidence: 0.9 });
  await tracer.close();
  const stats = tracer.stats();
  check(stats.delivered === 4 && stats.offloaded === 1, 'tracer wrote 4 events, one field offloaded to S3', JSON.stringify(stats));

  const replay = await run(['packages/kshark/bin/kshark.js', 'replay', sessionId, '--topic', topic, '--source', 'kafka', '--json']);
  let doc;
  try {
    doc = JSON.parse(replay.stdout);
  } catch {
    doc = undefined;
  }
  const tool = doc?.events?.find((e) => e.event_type === 'tool_call');
  check(
    replay.code === 0 && doc?.total_events === 4 && tool?.payload?.output?.body === big,
    'kshark replay --source kafka --json: 4 events, offloaded output fetched back from S3',
    `exit ${replay.code}, total ${doc?.total_events}, stderr ${replay.stderr.slice(0, 300)}`,
  );

  const diff = await run(['packages/kdiff/bin/kdiff.js', 'compare', sessionId, sessionId, '--topic', topic, '--source', 'kafka']);
  check(diff.code === 0, 'kdiff compare (a session with itself) exits 0', `exit ${diff.code}, stderr ${diff.stderr.slice(0, 300)}`);
} catch (err) {
  if (process.exitCode !== 1) {
    process.stdout.write(`FAIL ${String(err?.stack ?? err)}\n`);
    process.exitCode = 1;
  }
} finally {
  await admin.deleteTopic(topic).catch(() => undefined);
  admin.close();
  // The offloaded object lives under this run's own prefix: list and delete it.
  const client = createS3Client(s3);
  const { ListObjectsV2Command, DeleteObjectCommand } = s3Sdk();
  const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${s3.prefix}/` })).catch(() => undefined);
  for (const o of listed?.Contents ?? []) await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: o.Key })).catch(() => undefined);
  client.destroy();
}
