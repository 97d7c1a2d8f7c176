// The TCP ports a process listens on, from /proc (Linux): its socket inodes, from
// /proc/PID/fd, matched against the LISTEN rows (state 0A) of /proc/net/tcp and tcp6.
// A cluster worker in round-robin mode listens on nothing (the primary holds the shared
// port), so a port a worker listens on is its own: an inspector, say.
import fs from 'node:fs';

export function canListSockets(): boolean {
  return fs.existsSync('/proc/net/tcp');
}

export function listeningPorts(pid: number): number[] {
  let inodes: Set<string>;
  try {
    inodes = new Set(
      fs
        .readdirSync(`/proc/${pid}/fd`)
        .map((fd) => {
          try {
            return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/)?.[1];
          } catch {
            return undefined;
          }
        })
        .filter((inode): inode is string => inode !== undefined),
    );
  } catch {
    return [];
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const row of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = row.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== '0A' || !inodes.has(fields[9])) continue;
      ports.push(parseInt(fields[1].split(':')[1], 16));
    }
  }
  return [...new Set(ports)].sort((a, b) => a - b);
}
