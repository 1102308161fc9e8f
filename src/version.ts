/** Reported by --version and, later, in the FirewallMonitor's controllerVersion. */
export const VERSION = '0.1.0';
