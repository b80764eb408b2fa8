"""The one x86-64 system-call table: every call the kernel has (numbers and
names from arch/x86/entry/syscalls/syscall_64.tbl, argument lists from the
system-call man pages), with the kind of each argument.

The dispatcher (emu/linux/syscalls.py) takes names from here and checks each
handler's registration against it; --strace (strace.py) decodes arguments by
their kind; --stats, --report and replay name calls with `name()`. A call
with no handler returns ENOSYS and is counted (Process.enosys).

Argument kinds (strace.py decodes each):
  int uint hex ptr     numbers and plain addresses
  fd                   a descriptor (AT_FDCWD shown by name)
  path                 a NUL-terminated string read by the call
  wbuf                 bytes the call reads from the guest (length: next argument)
  rbuf                 bytes the call stores (length: the result)
  rstr                 a string the call stores (getcwd, readlink: length the result)
  oflags cflags sockflags epflags efdflags sfdflags inflags tfdflags mfdflags
  mode prot mapflags whence sig sigset sigaction how clock atflags amode
  futexop ioctl fcntl cloneflags waitopts domain socktype sockaddr rlimit
  archprctl prctl madvise epollop msgflags timerflags
                       flags, enumerations and structs decoded by name
  timespec timeval     a struct read by the call
  otimespec stat fds2 osigaction osigset
                       a struct stored by the call (shown after it succeeds)
  pollfds iov          arrays (count: next argument)
  argv                 a NULL-terminated array of strings
"""
from __future__ import annotations

_TABLE = """
0 read fd rbuf uint
1 write fd wbuf uint
2 open path oflags mode
3 close fd
4 stat path stat
5 fstat fd stat
6 lstat path stat
7 poll pollfds uint int
8 lseek fd int whence
9 mmap ptr uint prot mapflags fd hex
10 mprotect ptr uint prot
11 munmap ptr uint
12 brk ptr
13 rt_sigaction sig sigaction osigaction uint
14 rt_sigprocmask how sigset osigset uint
15 rt_sigreturn
16 ioctl fd ioctl hex
17 pread64 fd rbuf uint int
18 pwrite64 fd wbuf uint int
19 readv fd ptr int
20 writev fd iov int
21 access path amode
22 pipe fds2
23 select int ptr ptr ptr timeval
24 sched_yield
25 mremap ptr uint uint hex ptr
26 msync ptr uint hex
27 mincore ptr uint ptr
28 madvise ptr uint madvise
29 shmget hex uint hex
30 shmat int ptr hex
31 shmctl int int ptr
32 dup fd
33 dup2 fd fd
34 pause
35 nanosleep timespec ptr
36 getitimer int ptr
37 alarm uint
38 setitimer int ptr ptr
39 getpid
40 sendfile fd fd ptr uint
41 socket domain socktype int
42 connect fd sockaddr uint
43 accept fd ptr ptr
44 sendto fd wbuf uint msgflags sockaddr uint
45 recvfrom fd rbuf uint msgflags ptr ptr
46 sendmsg fd ptr msgflags
47 recvmsg fd ptr msgflags
48 shutdown fd int
49 bind fd sockaddr uint
50 listen fd int
51 getsockname fd ptr ptr
52 getpeername fd ptr ptr
53 socketpair domain socktype int fds2
54 setsockopt fd int int ptr uint
55 getsockopt fd int int ptr ptr
56 clone cloneflags ptr ptr ptr hex
57 fork
58 vfork
59 execve path argv argv
60 exit int
61 wait4 int ptr waitopts ptr
62 kill int sig
63 uname ptr
64 semget hex int hex
65 semop int ptr uint
66 semctl int int int hex
67 shmdt ptr
68 msgget hex hex
69 msgsnd int ptr uint hex
70 msgrcv int ptr uint int hex
71 msgctl int int ptr
72 fcntl fd fcntl hex
73 flock fd int
74 fsync fd
75 fdatasync fd
76 truncate path int
77 ftruncate fd int
78 getdents fd ptr uint
79 getcwd rstr uint
80 chdir path
81 fchdir fd
82 rename path path
83 mkdir path mode
84 rmdir path
85 creat path mode
86 link path path
87 unlink path
88 symlink path path
89 readlink path rstr uint
90 chmod path mode
91 fchmod fd mode
92 chown path int int
93 fchown fd int int
94 lchown path int int
95 umask mode
96 gettimeofday ptr ptr
97 getrlimit rlimit ptr
98 getrusage int ptr
99 sysinfo ptr
100 times ptr
101 ptrace int int ptr ptr
102 getuid
103 syslog int ptr int
104 getgid
105 setuid int
106 setgid int
107 geteuid
108 getegid
109 setpgid int int
110 getppid
111 getpgrp
112 setsid
113 setreuid int int
114 setregid int int
115 getgroups int ptr
116 setgroups uint ptr
117 setresuid int int int
118 getresuid ptr ptr ptr
119 setresgid int int int
120 getresgid ptr ptr ptr
121 getpgid int
122 setfsuid int
123 setfsgid int
124 getsid int
125 capget ptr ptr
126 capset ptr ptr
127 rt_sigpending ptr uint
128 rt_sigtimedwait sigset ptr timespec uint
129 rt_sigqueueinfo int sig ptr
130 rt_sigsuspend sigset uint
131 sigaltstack ptr ptr
132 utime path ptr
133 mknod path mode hex
134 uselib path
135 personality hex
136 ustat hex ptr
137 statfs path ptr
138 fstatfs fd ptr
139 sysfs int hex hex
140 getpriority int int
141 setpriority int int int
142 sched_setparam int ptr
143 sched_getparam int ptr
144 sched_setscheduler int int ptr
145 sched_getscheduler int
146 sched_get_priority_max int
147 sched_get_priority_min int
148 sched_rr_get_interval int ptr
149 mlock ptr uint
150 munlock ptr uint
151 mlockall hex
152 munlockall
153 vhangup
154 modify_ldt int ptr uint
155 pivot_root path path
156 _sysctl ptr
157 prctl prctl hex hex hex hex
158 arch_prctl archprctl hex
159 adjtimex ptr
160 setrlimit rlimit ptr
161 chroot path
162 sync
163 acct path
164 settimeofday ptr ptr
165 mount path path path hex ptr
166 umount2 path hex
167 swapon path hex
168 swapoff path
169 reboot hex hex hex ptr
170 sethostname path uint
171 setdomainname path uint
172 iopl int
173 ioperm hex hex int
174 create_module
175 init_module ptr uint path
176 delete_module path hex
177 get_kernel_syms
178 query_module
179 quotactl hex path int ptr
180 nfsservctl
181 getpmsg
182 putpmsg
183 afs_syscall
184 tuxcall
185 security
186 gettid
187 readahead fd int uint
188 setxattr path path ptr uint hex
189 lsetxattr path path ptr uint hex
190 fsetxattr fd path ptr uint hex
191 getxattr path path ptr uint
192 lgetxattr path path ptr uint
193 fgetxattr fd path ptr uint
194 listxattr path ptr uint
195 llistxattr path ptr uint
196 flistxattr fd ptr uint
197 removexattr path path
198 lremovexattr path path
199 fremovexattr fd path
200 tkill int sig
201 time ptr
202 futex ptr futexop int timespec ptr int
203 sched_setaffinity int uint ptr
204 sched_getaffinity int uint ptr
205 set_thread_area ptr
206 io_setup uint ptr
207 io_destroy hex
208 io_getevents hex int int ptr timespec
209 io_submit hex int ptr
210 io_cancel hex ptr ptr
211 get_thread_area ptr
212 lookup_dcookie hex ptr uint
213 epoll_create int
214 epoll_ctl_old
215 epoll_wait_old
216 remap_file_pages ptr uint hex uint hex
217 getdents64 fd ptr uint
218 set_tid_address ptr
219 restart_syscall
220 semtimedop int ptr uint timespec
221 fadvise64 fd int uint int
222 timer_create clock ptr ptr
223 timer_settime int timerflags ptr ptr
224 timer_gettime int ptr
225 timer_getoverrun int
226 timer_delete int
227 clock_settime clock timespec
228 clock_gettime clock otimespec
229 clock_getres clock otimespec
230 clock_nanosleep clock timerflags timespec ptr
231 exit_group int
232 epoll_wait fd ptr int int
233 epoll_ctl fd epollop fd ptr
234 tgkill int int sig
235 utimes path ptr
236 vserver
237 mbind ptr uint int ptr uint hex
238 set_mempolicy int ptr uint
239 get_mempolicy ptr ptr uint ptr hex
240 mq_open path oflags mode ptr
241 mq_unlink path
242 mq_timedsend int ptr uint uint timespec
243 mq_timedreceive int ptr uint ptr timespec
244 mq_notify int ptr
245 mq_getsetattr int ptr ptr
246 kexec_load hex uint ptr hex
247 waitid int int ptr waitopts ptr
248 add_key path path ptr uint int
249 request_key path path path int
250 keyctl int hex hex hex hex
251 ioprio_set int int int
252 ioprio_get int int
253 inotify_init
254 inotify_add_watch fd path hex
255 inotify_rm_watch fd int
256 migrate_pages int uint ptr ptr
257 openat fd path oflags mode
258 mkdirat fd path mode
259 mknodat fd path mode hex
260 fchownat fd path int int atflags
261 futimesat fd path ptr
262 newfstatat fd path stat atflags
263 unlinkat fd path atflags
264 renameat fd path fd path
265 linkat fd path fd path atflags
266 symlinkat path fd path
267 readlinkat fd path rstr uint
268 fchmodat fd path mode
269 faccessat fd path amode
270 pselect6 int ptr ptr ptr timespec ptr
271 ppoll pollfds uint timespec sigset uint
272 unshare cloneflags
273 set_robust_list ptr uint
274 get_robust_list int ptr ptr
275 splice fd ptr fd ptr uint hex
276 tee fd fd uint hex
277 sync_file_range fd int int hex
278 vmsplice fd ptr uint hex
279 move_pages int uint ptr ptr ptr hex
280 utimensat fd path ptr atflags
281 epoll_pwait fd ptr int int sigset uint
282 signalfd fd sigset uint
283 timerfd_create clock tfdflags
284 eventfd uint
285 fallocate fd int int int
286 timerfd_settime fd timerflags ptr ptr
287 timerfd_gettime fd ptr
288 accept4 fd ptr ptr sockflags
289 signalfd4 fd sigset uint sfdflags
290 eventfd2 uint efdflags
291 epoll_create1 epflags
292 dup3 fd fd cflags
293 pipe2 fds2 cflags
294 inotify_init1 inflags
295 preadv fd ptr int int
296 pwritev fd iov int int
297 rt_tgsigqueueinfo int int sig ptr
298 perf_event_open ptr int int int hex
299 recvmmsg fd ptr uint msgflags timespec
300 fanotify_init hex hex
301 fanotify_mark fd hex hex fd path
302 prlimit64 int rlimit ptr ptr
303 name_to_handle_at fd path ptr ptr atflags
304 open_by_handle_at fd ptr oflags
305 clock_adjtime clock ptr
306 syncfs fd
307 sendmmsg fd ptr uint msgflags
308 setns fd hex
309 getcpu ptr ptr ptr
310 process_vm_readv int ptr uint ptr uint hex
311 process_vm_writev int ptr uint ptr uint hex
312 kcmp int int int hex hex
313 finit_module fd path hex
314 sched_setattr int ptr hex
315 sched_getattr int ptr uint hex
316 renameat2 fd path fd path hex
317 seccomp int hex ptr
318 getrandom ptr uint hex
319 memfd_create path mfdflags
320 kexec_file_load fd fd uint path hex
321 bpf int ptr uint
322 execveat fd path argv argv atflags
323 userfaultfd cflags
324 membarrier hex hex int
325 mlock2 ptr uint hex
326 copy_file_range fd ptr fd ptr uint hex
327 preadv2 fd ptr int int int hex
328 pwritev2 fd iov int int int hex
329 pkey_mprotect ptr uint prot int
330 pkey_alloc hex hex
331 pkey_free int
332 statx fd path atflags hex ptr
333 io_pgetevents hex int int ptr timespec ptr
334 rseq ptr uint hex hex
424 pidfd_send_signal fd sig ptr hex
425 io_uring_setup uint ptr
426 io_uring_enter fd uint uint hex ptr uint
427 io_uring_register fd uint ptr uint
428 open_tree fd path hex
429 move_mount fd path fd path hex
430 fsopen path hex
431 fsconfig fd uint path ptr int
432 fsmount fd hex hex
433 fspick fd path hex
434 pidfd_open int hex
435 clone3 ptr uint
436 close_range fd fd hex
437 openat2 fd path ptr uint
438 pidfd_getfd fd fd hex
439 faccessat2 fd path amode atflags
440 process_madvise fd ptr uint madvise hex
441 epoll_pwait2 fd ptr int timespec sigset uint
442 mount_setattr fd path hex ptr uint
443 quotactl_fd fd hex hex ptr
444 landlock_create_ruleset ptr uint hex
445 landlock_add_rule fd int ptr hex
446 landlock_restrict_self fd hex
447 memfd_secret hex
448 process_mrelease fd hex
449 futex_waitv ptr uint hex timespec clock
450 set_mempolicy_home_node ptr uint uint hex
451 cachestat fd ptr ptr hex
452 fchmodat2 fd path mode atflags
453 map_shadow_stack ptr uint hex
454 futex_wake ptr hex int hex
455 futex_wait ptr hex hex hex timespec clock
456 futex_requeue ptr hex int int
457 statmount ptr ptr uint hex
458 listmount ptr ptr uint hex
459 lsm_get_self_attr int ptr ptr hex
460 lsm_set_self_attr int ptr uint hex
461 lsm_list_modules ptr ptr hex
462 mseal ptr uint hex
"""


class Entry:
    __slots__ = ("nr", "name", "args")

    def __init__(self, nr: int, name: str, args: tuple):
        self.nr, self.name, self.args = nr, name, args

    def __repr__(self) -> str:
        return "Entry(%d, %r, %r)" % (self.nr, self.name, self.args)


def _parse(text: str) -> dict:
    out = {}
    for line in text.strip().splitlines():
        nr, name, *args = line.split()
        out[int(nr)] = Entry(int(nr), name, tuple(args))
    return out


TABLE: dict[int, Entry] = _parse(_TABLE)
BY_NAME: dict[str, Entry] = {e.name: e for e in TABLE.values()}


def name(nr: int) -> str:
    """The call's name ("syscall_N" for a number the kernel does not have)."""
    e = TABLE.get(nr)
    return e.name if e is not None else "syscall_%d" % nr


def number(name_: str) -> int | None:
    e = BY_NAME.get(name_)
    return e.nr if e is not None else None
