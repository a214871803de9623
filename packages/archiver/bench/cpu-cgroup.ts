/**
 * A fixed CPU budget for one process, through a Linux cgroup: the scale-out benchmark's way of
 * giving each archiver "a machine of its own" on one machine. cgroup v1 (the cpu controller's
 * cpu.cfs_quota_us) or v2 (cpu.max); either needs a writable hierarchy, i.e. root.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PERIOD_US = 100_000;

/** Where CPU cgroups can be made on this machine, or undefined with the reason none can. */
export interface CpuCgroupRoot {
  version: 1 | 2;
  dir: string;
}

function writable(dir: string): boolean {
  const probe = join(dir, `agenttrace-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first hierarchy with a CPU controller this process can make groups in: v1 at
 * /sys/fs/cgroup/cpu, else v2 at /sys/fs/cgroup/unified or /sys/fs/cgroup (where the cpu
 * controller must be enabled for children; it is bound to v1 instead on hybrid machines).
 */
export function findCpuCgroupRoot(): CpuCgroupRoot | { reason: string } {
  const v1 = '/sys/fs/cgroup/cpu';
  if (existsSync(join(v1, 'cpu.cfs_quota_us'))) {
    if (writable(v1)) return { version: 1, dir: v1 };
    return { reason: `${v1} (cgroup v1 cpu controller) is not writable by this user` };
  }
  for (const dir of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    let controllers: string;
    try {
      controllers = readFileSync(join(dir, 'cgroup.controllers'), 'utf8');
    } catch {
      continue;
    }
    if (!controllers.split(/\s+/).includes('cpu')) continue;
    try {
      // Children get cpu.max only once the parent hands the controller down.
      if (!readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('cpu')) writeFileSync(join(dir, 'cgroup.subtree_control'), '+cpu');
    } catch {
      return { reason: `cannot enable the cpu controller in ${dir}/cgroup.subtree_control (cgroup v2)` };
    }
    if (writable(dir)) return { version: 2, dir };
    return { reason: `${dir} (cgroup v2) is not writable by this user` };
  }
  return { reason: 'no cgroup hierarchy with a cpu controller is mounted under /sys/fs/cgroup' };
}

/** Throttling counters of a group: scheduler periods it ran in, and in how many of them it hit its quota. */
export interface CpuThrottling {
  periods: number;
  throttled: number;
}

/** One cgroup holding one process at a fixed share of one core. Remove it after the process is gone. */
export class CpuCgroup {
  readonly dir: string;
  readonly #root: CpuCgroupRoot;

  /** Makes `<root>/<name>` with a quota of `cores` (0.25 = a quarter of one core per 100 ms period). */
  constructor(root: CpuCgroupRoot, name: string, cores: number) {
    this.#root = root;
    this.dir = join(root.dir, name);
    mkdirSync(this.dir);
    const quota = Math.round(cores * PERIOD_US);
    if (root.version === 1) {
      writeFileSync(join(this.dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(this.dir, 'cpu.cfs_quota_us'), String(quota));
    } else {
      writeFileSync(join(this.dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    }
  }

  /** Moves a process (all of its threads, and the threads it starts later) into the group. */
  add(pid: number): void {
    writeFileSync(join(this.dir, 'cgroup.procs'), String(pid));
  }

  throttling(): CpuThrottling {
    const stat = new Map(
      readFileSync(join(this.dir, 'cpu.stat'), 'utf8')
        .split('\n')
        .map((l) => l.split(' ') as [string, string]),
    );
    return { periods: Number(stat.get('nr_periods') ?? 0), throttled: Number(stat.get('nr_throttled') ?? 0) };
  }

  /** Removes the group; the kernel refuses while a process is still in it. */
  remove(): void {
    if (existsSync(this.dir)) rmdirSync(this.dir);
  }

  get version(): 1 | 2 {
    return this.#root.version;
  }
}
