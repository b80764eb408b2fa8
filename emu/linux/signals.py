"""Linux signal numbers and names (x86-64)."""
SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL = 1, 2, 3, 4, 5, 6, 7, 8, 9
SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD = 10, 11, 12, 13, 14, 15, 17
SIGCONT, SIGSTOP, SIGTSTP, SIGWINCH, SIGSYS = 18, 19, 20, 28, 31

SIGNAL_NAMES = {
    1: "Hangup", 2: "Interrupt", 3: "Quit", 4: "Illegal instruction", 5: "Trace/breakpoint trap",
    6: "Aborted", 7: "Bus error", 8: "Floating point exception", 9: "Killed", 10: "User defined signal 1",
    11: "Segmentation fault", 12: "User defined signal 2", 13: "Broken pipe", 14: "Alarm clock",
    15: "Terminated", 31: "Bad system call",
}

# signals whose default action is to ignore
DEFAULT_IGNORE = {SIGCHLD, SIGWINCH, 23, SIGCONT}
# default action dumps core
DEFAULT_CORE = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS}
