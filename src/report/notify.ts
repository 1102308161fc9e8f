/**
 * systemd's notify protocol (READY=1, STATUS=, WATCHDOG=1) through `systemd-notify`: Node has no
 * Unix datagram sockets. Messages then come from a child process, so the unit sets
 * NotifyAccess=all; and because systemd may not attribute a message whose sender already exited,
 * READY=1 and STATUS= are repeated with every watchdog ping (duplicates are harmless).
 */
import { spawn } from 'node:child_process';

export class Notifier {
  private ready = false;
  private status = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly binary = 'systemd-notify',
  ) {}

  get enabled(): boolean {
    return Boolean(this.env.NOTIFY_SOCKET);
  }

  /** Half the watchdog interval systemd asks for, or undefined when there is no watchdog. */
  get watchdogMs(): number | undefined {
    const usec = Number(this.env.WATCHDOG_USEC);
    if (!usec) return undefined;
    const pid = Number(this.env.WATCHDOG_PID);
    if (pid && pid !== process.pid) return undefined;
    return Math.max(100, Math.floor(usec / 2000));
  }

  private send(vars: string[]): void {
    if (!this.enabled || vars.length === 0) return;
    const child = spawn(this.binary, vars, { stdio: 'ignore', env: this.env });
    child.on('error', () => undefined);
  }

  markReady(status: string): void {
    this.ready = true;
    this.status = status;
    this.send(['READY=1', `STATUS=${status}`]);
  }

  setStatus(status: string): void {
    if (status === this.status) return;
    this.status = status;
    this.send([`STATUS=${status}`]);
  }

  /** Pings the watchdog while `healthy()` holds; a stuck agent stops pinging and systemd restarts it. */
  startWatchdog(healthy: () => boolean): void {
    const ms = this.watchdogMs;
    if (!this.enabled || ms === undefined) return;
    this.timer = setInterval(() => {
      if (!healthy()) return;
      this.send([...(this.ready ? ['READY=1'] : []), 'WATCHDOG=1', ...(this.status ? [`STATUS=${this.status}`] : [])]);
    }, ms);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
