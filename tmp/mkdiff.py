import subprocess, sys, os
SOL='solutions/06-hung-workers/server.ts'
src=open(SOL).read()
def make(name, mistake, verdict, check, edits):
    s=src
    for old,new in edits:
        assert s.count(old)==1, (name, old)
        s=s.replace(old,new)
    tmp=f'tmp/{name}'
    open(tmp,'w').write(s)
    d=subprocess.run(['diff','-u',SOL,tmp],capture_output=True,text=True).stdout.split('\n')
    d[0]=f'--- {SOL}'; d[1]=f'+++ {name}'
    head=[f'// Mistake: {mistake}', f'// Verdict: {verdict}'] + ([f'// Check: {check}'] if check else [])
    open(f'test/fixtures/06-hung-workers/{name}.diff','w').write('\n'.join(head)+'\n\n'+'\n'.join(d))
KILL="""      lastSeen.delete(worker);
      supervisor.markHung(worker);
      worker.process.kill('SIGKILL');
"""
make('heartbeat-never-checked','workers send heartbeats and the primary records them, but nothing ever looks at how old they are',
     'it had sent the primary heartbeats, and nothing was done when they stopped','SIGKILLs the hung',
     [("""  setInterval(() => {
    const now = performance.now();
    for (const [worker, seenAt] of lastSeen) {
      const silentMs = Math.round(now - seenAt);
      if (silentMs <= config.hangTimeoutMs) continue;
      // TODO (4): Kill a hung worker with SIGKILL: its SIGTERM handler needs the event loop that is blocked. Print its pid and how long it was silent.
      // TODO (5): Call supervisor.markHung(worker) first, so the supervisor replaces it at once, uncounted; fork nothing yourself.
      console.error(`worker ${worker.process.pid} hung: no heartbeat for ${silentMs} ms (HANG_TIMEOUT_MS=${config.hangTimeoutMs}): killing it with SIGKILL`);
"""+KILL+"""    }
  }, HEARTBEAT_INTERVAL_MS).unref();
""","")])
make('sigterm-only','a hung worker is sent SIGTERM, as lesson 5 stops workers, whose handler needs the blocked event loop',
     'though the primary sent it SIGTERM','SIGKILLs the hung',[("worker.process.kill('SIGKILL');","worker.process.kill('SIGTERM');")])
make('worker-kill','a hung worker is stopped with worker.kill(), which sends SIGTERM',
     'called worker.kill(), which sends it SIGTERM','SIGKILLs the hung',[("worker.process.kill('SIGKILL');","worker.kill();")])
make('hardcoded-timeout','the primary waits a fixed 3 s, the contract\'s default, instead of reading HANG_TIMEOUT_MS',
     'read the timeout from config.hangTimeoutMs','SIGKILLs the hung',[("if (silentMs <= config.hangTimeoutMs) continue;","if (silentMs <= 3_000) continue;")])
make('forks-itself','the primary forks a replacement itself after the kill, and the supervisor forks another',
     'a cluster.fork() of your own is one too many','SIGKILLs the hung',[(KILL,"""      lastSeen.delete(worker);
      supervisor.markHung(worker);
      worker.process.kill('SIGKILL');
      cluster.fork();
""")])
make('kills-busy-workers','a worker that misses two heartbeats is taken for hung, so a /heavy longer than 500 ms gets its worker killed',
     'was killed while it was busy with a /heavy','blocks its worker',[("if (silentMs <= config.hangTimeoutMs) continue;","if (silentMs <= 2 * HEARTBEAT_INTERVAL_MS) continue;")])
make('counted-hangs','the hung worker is killed without supervisor.markHung(), so lesson 3\'s policy counts each hang toward a crash loop and gives up',
     'Call supervisor.markHung(worker) before you kill it, so it is replaced at once and not counted','every worker hung',[("      supervisor.markHung(worker);\n","")])
make('watcher-keeps-primary','the primary\'s heartbeat interval is not unref()\'d, so the primary never exits after SIGTERM',
     'unref() the interval that looks at the heartbeats','SIGTERM while',[("""    }
  }, HEARTBEAT_INTERVAL_MS).unref();
}""","""    }
  }, HEARTBEAT_INTERVAL_MS);
}""")])
make('no-blocked-line','the heartbeat carries no event-loop delay, so the primary never says a worker was blocked',
     'no line with "blocked"','blocks its worker',[("""    if (message.blockedMs > config.hangTimeoutMs / 4) {
      console.log(`worker ${worker.process.pid} event loop blocked for ${message.blockedMs} ms (HANG_TIMEOUT_MS=${config.hangTimeoutMs})`);
    }
""","")])

make('heartbeat-keeps-worker','the worker\'s heartbeat interval is not unref()\'d, so a drained worker stays up with no heartbeats and is killed as hung',
     'were both SIGKILLed, though only one was hung','SIGTERM while',[("""    if (process.connected) process.send!(heartbeat);
  }, HEARTBEAT_INTERVAL_MS).unref();""","""    if (process.connected) process.send!(heartbeat);
  }, HEARTBEAT_INTERVAL_MS);""")])
make('never-forgets-exited','the primary never forgets a worker that exited, so every crash is later reported, and killed, as a hang',
     "it went on watching a worker that was gone","a /crash",[("  cluster.on('exit', (worker) => lastSeen.delete(worker));\n","")])
make('never-resets-last','the heartbeat measures its lateness from the worker\'s start, never from the last heartbeat',
     'each heartbeat should report only the delay since the one before','blocks its worker',[("    last = now;\n","")])
