/*
 * daemon.h — msync --daemon: the server brain offered over TLS to
 * clients that name a module of msyncd.conf (see docs/DAEMON.md).
 */
#ifndef DAEMON_H
#define DAEMON_H

/* Exit status of a connection process whose client failed to log in. */
#define DAEMON_EXIT_AUTH	77

/*
 * Runs the daemon with the configuration at path: listens (or takes a
 * socket from systemd), forks a process per connection, and returns an
 * exit status only when stopped or when it cannot start.
 */
int	 daemon_main(const char *config_path);

#endif /* DAEMON_H */
