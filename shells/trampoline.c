/*
 * trampoline.c: the only native code in jailkit.
 *
 * A compiled Deno program must never be setuid or carry file capabilities: the
 * Deno runtime obeys environment variables (DENO_INTERNAL_CHILD_ENTRYPOINT with
 * NODE_CHANNEL_FD runs an on-disk module as main; TMPDIR places its code
 * cache) before a line of our TypeScript runs. So the setuid-root (or
 * cap_sys_chroot,cap_setuid,cap_setgid) file is this program. It puts the
 * process into a known state and execs one fixed, root-owned target. All policy
 * lives in the TypeScript target.
 *
 * The same source, built with JK_PRIVILEGED 0, is the dev launcher of an
 * unprivileged tool: it runs `deno run <the tool's baked flags> entry.ts`
 * under a filtered environment, standing in for a compiled binary.
 *
 * Each build includes a generated header (JK_CONFIG_H) that defines:
 *   JK_PRIVILEGED   1 for setuid/caps entries, 0 for plain launchers
 *   JK_CAPS         1 when installed with file capabilities instead of setuid
 *   jk_target       absolute path of the program to exec
 *   jk_fixed_args   arguments placed before the caller's (NULL-terminated)
 *   jk_fixed_env    the whole environment of a privileged target, or the
 *                   variables added for a launcher (NULL-terminated)
 *
 * What the privileged build does, in order:
 *   1. makes sure fds 0-2 are open, so no file we or the target open lands on them,
 *      and that none is a directory (the jailed program inherits them: fchdir to a
 *      directory opened outside leads out of the jail), and that the open files
 *      limit leaves the runtime room to start;
 *   2. closes every fd above 2, so nothing the caller opened reaches the target;
 *   3. resets every signal disposition and empties the signal mask, and
 *      changes to /;
 *   4. copies the caller's environment into a memfd on fd 3 (data the target
 *      may consult under its own allowlist), then execs with a fixed one;
 *   5. with file capabilities, raises them into the ambient set, since execve
 *      of a file without capabilities would otherwise drop them;
 *   6. refuses a target that is not a root-owned regular file writable only by root;
 *   7. execs: argv[0] is the tool's name (a caller's login "-" is kept), then
 *      the fixed arguments, then the caller's arguments.
 * It never reads a configuration file, a user database or the environment.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include JK_CONFIG_H

/* The environment handed over on fd 3 starts with this line. */
#define ENV_MAGIC "JKENV1\n"
/* Upper bound of the handed-over environment; the rest is dropped. */
#define ENV_MAX (256 * 1024)

extern char **environ;

/* Write a message to fd 2 without stdio (whose buffers we do not trust here). */
static void say(const char *a, const char *b) {
  const char *parts[] = {"jailkit trampoline: ", a, b, "\n"};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (parts[i] && write(2, parts[i], strlen(parts[i])) < 0) return;
  }
}

static void die(const char *what, const char *detail) {
  say(what, detail);
  _exit(127);
}

/* Step 1: fds 0-2 open. A closed stdout would otherwise be reused by the
 * target's first open(), and its writes would land in that file. */
static void ensure_std_fds(void) {
  for (;;) {
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) die("cannot open /dev/null", "");
    if (fd > 2) {
      close(fd);
      return;
    }
  }
}

/* The Deno runtime needs about 20 fds before a line of the tool runs, and panics
 * (a stack trace, exit 1) without them; a caller's tiny `ulimit -n` gets one line
 * instead. The limit is left as it is: the target inherits the caller's. */
#define MIN_NOFILE 64

static void check_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MIN_NOFILE) {
    die("the open files limit (ulimit -n) must be at least 64", "");
  }
}

#if JK_PRIVILEGED
/* Step 1, continued: a directory on fd 0-2 (say `exec 0</`, or an fd leaked by
 * whatever started us) would reach the jailed program, and fchdir to it walks
 * out of the jail with the user's rights. A login never passes one. */
static void refuse_directory_std_fds(void) {
  static const char *names[] = {"stdin", "stdout", "stderr"};
  for (int fd = 0; fd <= 2; fd++) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) die("refusing a directory as ", names[fd]);
  }
}

/* Step 2: close every fd above 2. close_range needs no /proc and ignores a
 * lowered RLIMIT_NOFILE; the loop is the fallback for old kernels. */
static void close_other_fds(void) {
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 1024) max = 1024;
  for (long fd = 3; fd < max; fd++) close((int)fd);
}

/* Step 3: default dispositions and an empty mask. An ignored signal (SIGPIPE,
 * SIGCHLD) or a blocked one would survive execve and change how the jailed
 * shell behaves. glibc's signal() refuses signals 32 and 33 (its own), and
 * posix_spawn callers leave them ignored, so use the raw system call; this
 * process is single-threaded and execs next, so glibc needs neither. */
struct kernel_sigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)(void);
  unsigned long mask;
};

static void reset_signals(void) {
  sigset_t none;
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct kernel_sigaction dfl = {SIG_DFL, 0, NULL, 0};
    syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
  }
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) die("sigprocmask failed", "");
}

/* Step 4: the caller's environment as NUL-terminated entries in a memfd on
 * fd 3. It is data for the target's allowlist, never its environment. */
static void hand_over_environment(void) {
  int fd = memfd_create("jk-caller-env", 0); /* no CLOEXEC: must reach the target */
  if (fd < 0) die("memfd_create failed", "");
  size_t total = strlen(ENV_MAGIC);
  if (write(fd, ENV_MAGIC, total) != (ssize_t)total) die("cannot write environment", "");
  for (char **e = environ; e && *e; e++) {
    size_t n = strlen(*e) + 1;
    if (total + n > ENV_MAX) break;
    if (write(fd, *e, n) != (ssize_t)n) die("cannot write environment", "");
    total += n;
  }
  if (lseek(fd, 0, SEEK_SET) != 0) die("lseek failed", "");
  if (fd != 3) {
    if (dup2(fd, 3) != 3) die("dup2 failed", "");
    close(fd);
  }
}

#if JK_CAPS
/* Step 5: carry the file capabilities across execve. Without the ambient
 * set, exec of the (capability-less) target would clear them. */
static void raise_ambient_caps(void) {
  static const int wanted[] = {CAP_SYS_CHROOT, CAP_SETUID, CAP_SETGID};
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0) die("capget failed", "");
  for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
    int cap = wanted[i];
    if (!(data[cap / 32].permitted & (1U << (cap % 32)))) die("missing file capability", "");
    data[cap / 32].inheritable |= 1U << (cap % 32);
  }
  if (syscall(SYS_capset, &hdr, data) != 0) die("capset failed", "");
  for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, wanted[i], 0, 0) != 0) {
      die("cannot raise ambient capability", "");
    }
  }
}
#endif
#endif

/* Step 6: the target must be what the installer put there. */
static void check_target(void) {
  struct stat st;
  if (stat(jk_target, &st) != 0) die("cannot stat target ", jk_target);
  if (!S_ISREG(st.st_mode)) die("target is not a regular file: ", jk_target);
  if (st.st_uid != 0) die("target is not owned by root: ", jk_target);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) die("target is writable by group or others: ", jk_target);
}

#if !JK_PRIVILEGED
/* A launcher keeps the caller's environment, minus what the Deno CLI obeys but
 * a compiled binary would not (NODE_OPTIONS, DENO_*), plus its fixed entries. */
static char **launcher_environment(void) {
  size_t n = 0, fixed = 0;
  for (char **e = environ; e && *e; e++) n++;
  while (jk_fixed_env[fixed]) fixed++;
  char **env = calloc(n + fixed + 1, sizeof *env);
  if (!env) die("out of memory", "");
  size_t k = 0;
  for (size_t i = 0; i < fixed; i++) env[k++] = (char *)jk_fixed_env[i];
  for (char **e = environ; e && *e; e++) {
    if (!strncmp(*e, "DENO_", 5) || !strncmp(*e, "NODE_", 5) || !strncmp(*e, "RUST_", 5)) continue;
    env[k++] = *e;
  }
  env[k] = NULL;
  return env;
}
#endif

int main(int argc, char **argv) {
  ensure_std_fds();
  check_fd_limit();
#if JK_PRIVILEGED
  refuse_directory_std_fds();
  close_other_fds();
  reset_signals();
  /* A known cwd: nothing of the caller's is read relative to it. */
  if (chdir("/") != 0) die("cannot chdir to /", "");
  hand_over_environment();
#if JK_CAPS
  raise_ambient_caps();
#endif
  char **env = (char **)jk_fixed_env;
#else
  char **env = launcher_environment();
#endif
  check_target();

  size_t fixed = 0;
  while (jk_fixed_args[fixed]) fixed++;
  size_t extra = argc > 1 ? (size_t)argc - 1 : 0;
  char **args = calloc(1 + fixed + extra + 1, sizeof *args);
  if (!args) die("out of memory", "");
  /* The target gets only the tool's own name, with a caller's login "-" kept.
   * The Deno CLI obeys argv[0] (named "dx" it runs `deno x`, which executes a
   * package.json bin from the cwd: a caller's script ran as root that way), so
   * the caller's string is never passed on. argc may be 0 (Linux >= 5.18 then
   * passes one empty string): never read past it. */
  static char login_name[] = "-" JK_TOOL;
  args[0] = (argc > 0 && argv[0] && argv[0][0] == '-') ? login_name : login_name + 1;
  for (size_t i = 0; i < fixed; i++) args[1 + i] = (char *)jk_fixed_args[i];
  for (size_t i = 0; i < extra; i++) args[1 + fixed + i] = argv[1 + i];

  execve(jk_target, args, env);
  die("cannot execute ", jk_target);
  return 127;
}
