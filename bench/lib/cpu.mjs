// CPU time readings for the measurement windows, all in µs. Linux only;
// elsewhere they return NaN and the CPU columns show "–".
import { readFileSync } from 'node:fs';

/** Linux USER_HZ, the unit of /proc times: 100 on every x86-64 and arm64 kernel. */
const CLK_TCK = 100;

/** A process's CPU time (user+system, all its threads), from /proc/<pid>/stat. */
export function processCpuUs(pid) {
  if (!pid) return NaN;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // stat(5) fields 14 and 15 (utime, stime); f[0] is field 3
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/**
 * CPU time the whole machine spent busy (user, nice, system, irq, softirq)
 * from /proc/stat. Minus the server and the load generator, what is left is
 * other processes competing for the cores: a disturbed measurement.
 * (A process's stime includes softirq work done in its context, which
 * /proc/stat counts apart, hence irq and softirq here.)
 */
export function machineCpuUs() {
  try {
    const line = readFileSync('/proc/stat', 'latin1').slice(0, 256).split('\n')[0];
    const f = line.trim().split(/\s+/);
    return ((Number(f[1]) + Number(f[2]) + Number(f[3]) + Number(f[6]) + Number(f[7])) * 1e6) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** This process's CPU time, µs resolution. */
export function selfCpuUs() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * A process's resident memory now and at its peak (VmRSS, VmHWM from
 * /proc/<pid>/status), in bytes. The peak cannot be reset, so it covers the
 * process's whole life: the runner starts a fresh server per measurement.
 */
export function processMemory(pid) {
  if (!pid) return { rss: NaN, peakRss: NaN };
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'latin1');
    const kb = (name) => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s);
      return m ? Number(m[1]) * 1024 : NaN;
    };
    return { rss: kb('VmRSS'), peakRss: kb('VmHWM') };
  } catch {
    return { rss: NaN, peakRss: NaN };
  }
}
