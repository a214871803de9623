/**
 * Does adding archivers to a group add throughput, up to the partition count (issue #15)?
 *
 * Each archiver is a process of its own (the real bin) in a Linux cgroup capped at --cpu cores,
 * so that k members on this machine stand for k machines of that size, instead of k archivers in
 * one process sharing every core (where one archiver alone already uses them all). For each k of
 * --members, --runs times (runs outer, so every k meets the same drift of the machine's load), k
 * members in a fresh group drain a backlog of --events events in --partitions partitions.
 *
 * The rate is steady state, without start-up, joins or warm-up: each run's topic first holds one
 * file's worth of events per partition, and the backlog sits behind it in an open transaction,
 * which the members (read_committed) cannot read. Once the group is stable with every partition
 * assigned and that first file of every partition is committed (every member has loaded its
 * lazily imported code, started its encode workers and uploaded once), the transaction commits
 * and the clock starts; it stops when every offset is committed, i.e. durably in a Parquet object
 * on S3. Every partition gets the same number of events, a multiple of --roll-rows, so files roll
 * on size to the last one and none waits for --roll-age. After each run the archive must hold every
 * offset exactly once.
 *
 *   scripts/bench archiver-scale-out [--events 160000] [--partitions 4] [--members 1,2,3,4,6]
 *     [--runs 3] [--cpu 0.25] [--encode-workers 1] [--roll-rows 5000] [--roll-age 10s]
 *
 * Needs a writable cpu cgroup (root); removes its cgroups, topics and S3 objects at the end.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { KafkaAdmin } from '@agenttrace/common';
import { createTopic, deleteTopic, kafkaConn, produceRaw, repoRoot, stack, uniqueName } from '../../../test-support/stack.js';
import { deletePrefix, s3 } from '../test/helpers.js';
import { assertArchivedOnce, backlogRecords, machineLine, median, produceInTransaction, type OpenTransaction } from './bench-support.js';
import { CpuCgroup, findCpuCgroupRoot, type CpuCgroupRoot, type CpuThrottling } from './cpu-cgroup.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '160000' },
    partitions: { type: 'string', default: '4' },
    members: { type: 'string', default: '1,2,3,4,6' },
    runs: { type: 'string', default: '3' },
    cpu: { type: 'string', default: '0.25' },
    // Threads share the member's quota: at a quarter of a core a second one only adds hand-offs.
    'encode-workers': { type: 'string', default: '1' },
    'roll-rows': { type: 'string', default: '5000' },
    'roll-age': { type: 'string', default: '10s' },
    sessions: { type: 'string', default: '2000' },
  },
});
const N = Number(values.events);
const P = Number(values.partitions);
const MEMBERS = values.members.split(',').map(Number);
const RUNS = Number(values.runs);
const CPU = Number(values.cpu);
const WORKERS = Number(values['encode-workers']);
const ROLL_ROWS = Number(values['roll-rows']);
const SESSIONS = Number(values.sessions);
const CORES = cpus().length;
for (const [flag, v] of [['--events', N], ['--partitions', P], ['--runs', RUNS], ['--roll-rows', ROLL_ROWS], ['--sessions', SESSIONS], ...MEMBERS.map((k) => ['--members', k] as const)] as const) {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${flag} must be a positive integer, got ${v}`);
}
if (!Number.isInteger(WORKERS) || WORKERS < 0) throw new Error(`--encode-workers must be 0 or more, got ${WORKERS}`);
if (!(CPU > 0 && CPU <= CORES)) throw new Error(`--cpu must be a share of cores in (0, ${CORES}], got ${values.cpu}`);
// Whole files only, so that no file waits for --roll-age.
if (N % P !== 0 || (N / P) % ROLL_ROWS !== 0) throw new Error(`--events / --partitions must be a whole multiple of --roll-rows (${N} / ${P} vs ${ROLL_ROWS})`);

const root = findCpuCgroupRoot();
if ('reason' in root) {
  process.stderr.write(`archiver-scale-out needs a writable cpu cgroup to cap each archiver's CPU (run it as root on Linux): ${root.reason}\n`);
  process.exit(2);
}
const cgroupRoot: CpuCgroupRoot = root;

const BIN = join(repoRoot, 'packages/archiver/bin/agenttrace-archiver.js');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const tag = uniqueName('agenttrace-bench-scale');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** User + system CPU seconds of a process and all its threads so far; undefined once it is gone. */
function processCpu(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** CPU seconds the whole machine spent busy so far (everything but idle and iowait, all cores). */
function machineBusy(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  return (ticks.reduce((a, b) => a + b, 0) - ticks[3]! - ticks[4]!) / CLK_TCK;
}

/**
 * The local stack's broker and S3 server, from scripts/stack's pid files (pid and start time; a
 * recycled pid does not match), to show what they spend while the members archive. Read only.
 */
function stackProcesses(): Array<{ name: string; pid: number }> {
  const dir = join(process.env.AGENTTRACE_STACK_DIR ?? join(repoRoot, '.stack'), 'pids');
  const out: Array<{ name: string; pid: number }> = [];
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return out;
  }
  for (const [name, file] of [['broker', files.find((f) => /^kafka-main-\d+\.pid$/.test(f))], ['S3 server', 's3.pid']] as const) {
    if (file === undefined) continue;
    try {
      const [pid, started] = readFileSync(join(dir, file), 'utf8').trim().split(/\s+/).map(Number);
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) === started) out.push({ name, pid: pid! });
    } catch {
      // Not running or not ours to read: the figure is left out.
    }
  }
  return out;
}
const stackProcs = stackProcesses();

interface Member {
  pid: number;
  child: ChildProcess;
  cgroup: CpuCgroup;
  exit: Promise<number | null>;
  exited: boolean;
  /** The last lines it printed, to say why it stopped if it did. */
  tail: string[];
}

const live = new Set<Member>();

function startMember(topic: string, group: string, prefix: string, name: string): Member {
  const cgroup = new CpuCgroup(cgroupRoot, name, CPU);
  const args = [BIN, '--brokers', stack.brokers.join(','), '--topic', topic, '--dlq-topic', `${topic}.dlq`, '--group', group, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket, '--s3-prefix', prefix];
  args.push('--roll-rows', String(ROLL_ROWS), '--roll-age', values['roll-age'], '--encode-workers', String(WORKERS), '--quiet');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) {
    cgroup.remove();
    throw new Error(`could not start ${BIN}`);
  }
  // At once, before the archiver has started its encode workers: threads started later inherit the group.
  cgroup.add(child.pid);
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(...chunk.toString().split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 20));
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const m: Member = { pid: child.pid, child, cgroup, tail, exited: false, exit: new Promise((res) => child.once('exit', (code) => res(code))) };
  void m.exit.then(() => (m.exited = true));
  live.add(m);
  return m;
}

/** Stops a member (SIGTERM to the pid started here, SIGKILL after 60 s), then removes its cgroup. */
async function stopMember(m: Member): Promise<void> {
  if (!m.exited) m.child.kill('SIGTERM');
  const timer = setTimeout(() => m.child.kill('SIGKILL'), 60_000);
  await m.exit;
  clearTimeout(timer);
  // The kernel may still count the reaped process for a moment.
  for (let i = 0; ; i++) {
    try {
      m.cgroup.remove();
      break;
    } catch (err) {
      if (i >= 50) throw err;
      await sleep(100);
    }
  }
  live.delete(m);
}

interface Run {
  k: number;
  /** Backlog events per second from the transaction's commit to "every offset committed". */
  rate: number;
  /** Start of the processes to "group stable, every partition assigned". */
  joinSecs: number;
  /** "Group stable" to "every partition's first file committed". */
  warmSecs: number;
  windowSecs: number;
  maxPartitions: number;
  memberCores: number;
  memberMicrosPerEvent: number;
  throttledPct: number;
  stackCores: Map<string, number>;
  machineCores: number;
  rebalanced: boolean;
}

const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

/** The clock and the CPU counters at one moment. */
interface Snapshot {
  t: number;
  members: number[];
  throttling: CpuThrottling[];
  stack: number[];
  machine: number;
}

const topics = new Set<string>();
const WARM_RECORDS = backlogRecords(P * ROLL_ROWS, SESSIONS, { partition: (i) => i % P });

/** One run: k members drain `records` (in equal shares per partition) from a topic of their own. */
async function run(k: number, records: Parameters<typeof produceInTransaction>[1], admin: KafkaAdmin): Promise<Run> {
  const topic = uniqueName('bench-scale');
  const group = uniqueName('bench-scale-group');
  const prefix = uniqueName('bench-scale');
  const members: Member[] = [];
  let txn: OpenTransaction | undefined;
  const alive = () => {
    const dead = members.find((m) => m.exited);
    if (dead) throw new Error(`archiver ${dead.pid} stopped: ${dead.tail.join(' | ')}`);
  };
  const snapshot = (): Snapshot => ({
    t: performance.now(),
    members: members.map((m) => processCpu(m.pid) ?? 0),
    throttling: members.map((m) => m.cgroup.throttling()),
    stack: stackProcs.map((p) => processCpu(p.pid) ?? 0),
    machine: machineBusy(),
  });
  const committed = async () => (await admin.groupOffsets(group)).get(topic) ?? new Map<number, number>();
  // Offsets run 0..ROLL_ROWS-1 (the warm-up file), then the backlog; its commit marker follows.
  const warmEnd = ROLL_ROWS;
  const end = ROLL_ROWS + N / P;
  const deadline = Date.now() + 600_000;
  try {
    topics.add(topic);
    await createTopic(topic, P);
    await produceRaw(topic, WARM_RECORDS);
    txn = await produceInTransaction(topic, records);

    const tSpawn = performance.now();
    for (let i = 0; i < k; i++) members.push(startMember(topic, group, prefix, `${tag}-k${k}-${Date.now().toString(36)}-${i}`));

    // Joined: every member is in the group and every partition is held (at most P members hold some).
    let assigned: Array<{ memberId: string; partitions: number[] }> = [];
    for (;;) {
      if (Date.now() > deadline) throw new Error(`${k} members did not form a stable group in 10 min`);
      alive();
      const g = await admin.describeGroup(group);
      const held = g.members.map((m) => ({ memberId: m.memberId, partitions: m.partitions.filter((tp) => tp.topic === topic).map((tp) => tp.partition) })).filter((m) => m.partitions.length > 0);
      if (g.state === 'stable' && g.members.length === k && held.length === Math.min(k, P) && new Set(held.flatMap((m) => m.partitions)).size === P) {
        assigned = held;
        break;
      }
      await sleep(100);
    }
    const tStable = performance.now();
    // Warm: every partition's first file is committed, by the members that hold it now.
    for (;;) {
      if (Date.now() > deadline) throw new Error(`${k} members did not archive the first files in 10 min`);
      alive();
      const c = await committed();
      if ([...Array(P).keys()].every((p) => (c.get(p) ?? 0) >= warmEnd)) break;
      await sleep(100);
    }
    const tWarm = performance.now();

    const start = snapshot();
    await txn.commit();
    txn = undefined;
    let stop: Snapshot;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`${k} members did not commit every offset in 10 min`);
      alive();
      const c = await committed();
      if ([...Array(P).keys()].every((p) => (c.get(p) ?? 0) >= end)) {
        stop = snapshot();
        break;
      }
      await sleep(100);
    }
    const after = await admin.describeGroup(group);
    await assertArchivedOnce(prefix, topic, new Map([...Array(P).keys()].map((p) => [p, end])));
    const secs = (stop.t - start.t) / 1000;
    const memberCpu = sum(stop.members.map((c, i) => c - start.members[i]!));
    const periods = sum(stop.throttling.map((x, i) => x.periods - start.throttling[i]!.periods));
    const throttled = sum(stop.throttling.map((x, i) => x.throttled - start.throttling[i]!.throttled));
    return {
      k,
      rate: N / secs,
      joinSecs: (tStable - tSpawn) / 1000,
      warmSecs: (tWarm - tStable) / 1000,
      windowSecs: secs,
      maxPartitions: Math.max(...assigned.map((m) => m.partitions.length)),
      memberCores: memberCpu / secs / assigned.length,
      memberMicrosPerEvent: (memberCpu * 1e6) / N,
      throttledPct: periods === 0 ? 0 : (100 * throttled) / periods,
      stackCores: new Map(stackProcs.map((p, i) => [p.name, (stop.stack[i]! - start.stack[i]!) / secs])),
      machineCores: (stop.machine - start.machine) / secs,
      // A member that left or joined while the clock ran would have moved partitions.
      rebalanced: after.members.length !== k || !assigned.every((a) => after.members.some((m) => m.memberId === a.memberId)),
    };
  } finally {
    await txn?.abort().catch(() => undefined);
    await Promise.all(members.map((m) => stopMember(m)));
    await deletePrefix(s3(), prefix);
    await Promise.all([deleteTopic(topic), deleteTopic(`${topic}.dlq`)]);
    topics.delete(topic);
  }
}

let cleaning: Promise<void> | undefined;
/** Everything the benchmark made: its processes (by pid), their cgroups, the topics. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...live].map((m) => stopMember(m).catch((err: unknown) => process.stderr.write(`cleanup: ${String(err)}\n`))));
    await Promise.all([...topics].flatMap((t) => [deleteTopic(t), deleteTopic(`${t}.dlq`)]));
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal}: stopping the archivers and removing what the benchmark made\n`);
    void cleanUp().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const command = `scripts/bench archiver-scale-out ${process.argv.slice(2).join(' ')}`.trim();
  const loadBefore = machineLine();
  const admin = new KafkaAdmin(kafkaConn());
  const results: Run[] = [];
  // In equal shares per partition (no member gets more work by the key hash's whim), all in the
  // last full hour (in the past, and no file rolls early on an hour change).
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
  const records = backlogRecords(N, SESSIONS, { partition: (i) => i % P, timestamp: (i) => new Date(hour + Math.floor((i / N) * 3_000_000)).toISOString() });
  const bytes = sum(records.map((r) => String(r.value).length));
  process.stdout.write(`backlog: ${N} events (${(bytes / 1e6).toFixed(0)} MB of JSON) in ${P} partitions of ${N / P}, after a first file of ${ROLL_ROWS} per partition\n`);
  process.stdout.write(`members: separate processes (${BIN.slice(repoRoot.length + 1)}), each in a cgroup v${cgroupRoot.version} capped at ${CPU} core, ${WORKERS} encode worker(s), files of ${ROLL_ROWS} rows\n`);
  if (Math.min(Math.max(...MEMBERS), P) * CPU > CORES - 1) process.stdout.write(`note: ${Math.min(Math.max(...MEMBERS), P)} busy members x ${CPU} core leave less than one of ${CORES} cores for the broker and the S3 server\n`);
  try {
    for (let r = 1; r <= RUNS; r++) {
      for (const k of MEMBERS) {
        const x = await run(k, records, admin);
        results.push(x);
        const stackText = [...x.stackCores].map(([n, c]) => `${n} ${c.toFixed(2)}`).join(', ');
        process.stdout.write(
          `run ${r}, ${k} member(s): ${Math.round(x.rate)} events/s (${x.windowSecs.toFixed(2)} s; before: joined in ${x.joinSecs.toFixed(1)} s, first files in ${x.warmSecs.toFixed(1)} s); ` +
            `members ${x.memberCores.toFixed(2)} core each, ${x.memberMicrosPerEvent.toFixed(1)} µs/event, throttled in ${x.throttledPct.toFixed(0)}% of periods; ` +
            `cores used: ${stackText}${stackText ? ', ' : ''}machine ${x.machineCores.toFixed(2)} of ${CORES}; archive: every offset once${x.rebalanced ? '; GROUP CHANGED WHILE TIMED' : ''}\n`,
        );
      }
    }
  } finally {
    admin.close();
    await cleanUp();
  }

  const base = median(results.filter((x) => x.k === MEMBERS[0]).map((x) => x.rate));
  const m = (k: number, f: (x: Run) => number) => median(results.filter((x) => x.k === k).map(f));
  const stackNames = stackProcs.map((p) => p.name);
  process.stdout.write(`\ncommand: ${command}\nmachine before: ${loadBefore}\nmachine after:  ${machineLine()}\n`);
  process.stdout.write(
    'rate: backlog events per second from the moment they became readable (the transaction holding them committed; members joined and warm) to the moment every offset was committed (durably in S3).\n\n',
  );
  process.stdout.write(`| members | most partitions on one member | events/s, median of ${RUNS} | per member holding partitions | x ${MEMBERS[0]} member(s) | runs | member µs/event | member cores | throttled | ${stackNames.map((n) => `${n} cores | `).join('')}machine busy cores |\n`);
  process.stdout.write(`|---|---|---|---|---|---|---|---|---|${stackNames.map(() => '---|').join('')}---|\n`);
  for (const k of MEMBERS) {
    const rate = m(k, (x) => x.rate);
    const runs = results.filter((x) => x.k === k);
    process.stdout.write(
      `| ${k} | ${m(k, (x) => x.maxPartitions)} | ${Math.round(rate)} | ${Math.round(rate / Math.min(k, P))} | ${(rate / base).toFixed(2)} | ${runs.map((x) => `${Math.round(x.rate)}${x.rebalanced ? '*' : ''}`).join(', ')} | ` +
        `${m(k, (x) => x.memberMicrosPerEvent).toFixed(1)} | ${m(k, (x) => x.memberCores).toFixed(2)} | ${m(k, (x) => x.throttledPct).toFixed(0)}% | ${stackNames.map((n) => `${m(k, (x) => x.stackCores.get(n) ?? 0).toFixed(2)} | `).join('')}${m(k, (x) => x.machineCores).toFixed(2)} |\n`,
    );
  }
  if (results.some((x) => x.rebalanced)) process.stdout.write('* the group changed while the clock ran (a member left or rejoined)\n');
  process.stdout.write(`member cores: CPU used per member holding partitions over the timed interval (cap ${CPU}); throttled: share of scheduler periods in which a member hit its cap\n`);
}

await main();
process.exit(0);
