// See CRLMProcess.h. Every layer is applied by the worker to itself, before it runs model code.
#define _GNU_SOURCE
#include "CRLMProcess.h"

#ifdef __linux__

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// MARK: - Early: namespaces and limits

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t length = (ssize_t)strlen(text);
    ssize_t written = write(fd, text, (size_t)length);
    close(fd);
    return written == length ? 0 : -1;
}

/// The first process of a worker, once the REPL runs as its child: waits for it and ends the same
/// way, so the host sees the REPL's own exit status or signal.
static void relay(pid_t child) {
    close(3);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(status)) {
        int number = WTERMSIG(status);
        signal(number, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, number);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(number);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 70);
}

unsigned rlm_confine_early(pid_t parent, rlm_limits limits) {
    unsigned layers = 0;
    // Die with the host; and if the host is already gone, do not start at all.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(70);
    // Nothing of the host's but the channel (3) and the standard descriptors.
    syscall(SYS_close_range, 4, ~0U, 0);

    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) == 0) {
        char map[64];
        layers |= RLM_LAYER_USER_NAMESPACE | RLM_LAYER_NETWORK_NAMESPACE;
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
        write_file("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
        write_file("/proc/self/gid_map", map);
        // The new PID namespace takes effect for children: the REPL runs in one, as its first
        // process, and this process only relays its end to the host. Its own /proc then shows
        // the REPL's processes alone (libdispatch must read its threads' /proc/<tid>/stat).
        pid_t child = fork();
        if (child < 0) _exit(71);
        if (child > 0) relay(child);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
            layers |= RLM_LAYER_PID_NAMESPACE;
        }
    } else if (unshare(CLONE_NEWNET) == 0) {
        layers |= RLM_LAYER_NETWORK_NAMESPACE;
    }

    int limited = 1;
    struct rlimit limit;
    if (limits.address_space_bytes) {
        limit.rlim_cur = limit.rlim_max = limits.address_space_bytes;
        limited &= setrlimit(RLIMIT_AS, &limit) == 0;
    }
    if (limits.open_files) {
        limit.rlim_cur = limit.rlim_max = limits.open_files;
        limited &= setrlimit(RLIMIT_NOFILE, &limit) == 0;
    }
    if (limits.file_size_bytes) {
        limit.rlim_cur = limit.rlim_max = limits.file_size_bytes;
        limited &= setrlimit(RLIMIT_FSIZE, &limit) == 0;
    }
    limit.rlim_cur = limit.rlim_max = 0;
    limited &= setrlimit(RLIMIT_CORE, &limit) == 0;
    if (limited) layers |= RLM_LAYER_RESOURCE_LIMITS;
    return layers;
}

// MARK: - Landlock (constants up to ABI 6, for older kernel headers)

#define RLM_LL_FS_EXECUTE (1ULL << 0)
#define RLM_LL_FS_WRITE_FILE (1ULL << 1)
#define RLM_LL_FS_READ_FILE (1ULL << 2)
#define RLM_LL_FS_READ_DIR (1ULL << 3)
#define RLM_LL_FS_ABI1 ((1ULL << 13) - 1)
#define RLM_LL_FS_REFER (1ULL << 13)
#define RLM_LL_FS_TRUNCATE (1ULL << 14)
#define RLM_LL_FS_IOCTL_DEV (1ULL << 15)
#define RLM_LL_NET_BIND_TCP (1ULL << 0)
#define RLM_LL_NET_CONNECT_TCP (1ULL << 1)
#define RLM_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define RLM_LL_SCOPE_SIGNAL (1ULL << 1)
#define RLM_LL_CREATE_RULESET_VERSION (1U << 0)
#define RLM_LL_RULE_PATH_BENEATH 1

struct rlm_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct rlm_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

static uint64_t file_rights(uint64_t rights) {
    return rights & (RLM_LL_FS_EXECUTE | RLM_LL_FS_WRITE_FILE | RLM_LL_FS_READ_FILE | RLM_LL_FS_TRUNCATE | RLM_LL_FS_IOCTL_DEV);
}

static int add_path(int ruleset, const char *path, uint64_t rights) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    struct stat status;
    if (fstat(fd, &status) == 0 && !S_ISDIR(status.st_mode)) rights = file_rights(rights);
    struct rlm_path_beneath_attr rule = {.allowed_access = rights, .parent_fd = fd};
    long result = syscall(SYS_landlock_add_rule, ruleset, RLM_LL_RULE_PATH_BENEATH, &rule, 0);
    close(fd);
    return result == 0 ? 0 : -1;
}

static unsigned apply_landlock(const char *const *read_paths, size_t read_count, const char *const *write_paths,
                               size_t write_count, int *abi_out) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, RLM_LL_CREATE_RULESET_VERSION);
    *abi_out = abi > 0 ? (int)abi : 0;
    if (abi <= 0) return 0;
    struct rlm_ruleset_attr attr = {0};
    size_t attr_size = sizeof(uint64_t);
    attr.handled_access_fs = RLM_LL_FS_ABI1;
    if (abi >= 2) attr.handled_access_fs |= RLM_LL_FS_REFER;
    if (abi >= 3) attr.handled_access_fs |= RLM_LL_FS_TRUNCATE;
    if (abi >= 5) attr.handled_access_fs |= RLM_LL_FS_IOCTL_DEV;
    unsigned layers = RLM_LAYER_LANDLOCK;
    if (abi >= 4) {
        attr.handled_access_net = RLM_LL_NET_BIND_TCP | RLM_LL_NET_CONNECT_TCP;
        attr_size = 2 * sizeof(uint64_t);
        layers |= RLM_LAYER_LANDLOCK_NETWORK;
    }
    if (abi >= 6) {
        attr.scoped = RLM_LL_SCOPE_ABSTRACT_UNIX_SOCKET | RLM_LL_SCOPE_SIGNAL;
        attr_size = sizeof attr;
        layers |= RLM_LAYER_LANDLOCK_SCOPE;
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (ruleset < 0) return 0;
    uint64_t read = RLM_LL_FS_EXECUTE | RLM_LL_FS_READ_FILE | RLM_LL_FS_READ_DIR;
    int ok = 1;
    for (size_t i = 0; i < read_count; i++) ok &= add_path(ruleset, read_paths[i], read) == 0;
    for (size_t i = 0; i < write_count; i++) ok &= add_path(ruleset, write_paths[i], attr.handled_access_fs) == 0;
    ok &= add_path(ruleset, "/dev/null", RLM_LL_FS_READ_FILE | RLM_LL_FS_WRITE_FILE) == 0;
    if (ok && syscall(SYS_landlock_restrict_self, ruleset, 0) == 0) {
        close(ruleset);
        return layers;
    }
    close(ruleset);
    return 0;
}

// MARK: - seccomp

#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define DENY(error) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((error) & SECCOMP_RET_DATA))
#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LOAD_ARG0 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]))
#define IF_NR_DENY(number, error) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 1), DENY(error)
/// The next 4 instructions decide for `number`: allowed when (arg0 == value).
#define IF_NR_ARG0_IS(number, value, error) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 4), LOAD_ARG0, \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (value), 0, 1), ALLOW, DENY(error)

static unsigned apply_seccomp(void) {
    uint32_t self = (uint32_t)getpid();
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        LOAD_NR,
        // The x32 ABI shares the architecture value: refuse it whole.
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), DENY(ENOSYS),
        IF_NR_DENY(SYS_execve, EPERM),
        IF_NR_DENY(SYS_execveat, EPERM),
        IF_NR_DENY(SYS_fork, EPERM),
        IF_NR_DENY(SYS_vfork, EPERM),
        // clone3 passes its flags in memory, which a filter cannot read: say it does not exist,
        // so that libc falls back to clone, whose flags are checked below.
        IF_NR_DENY(SYS_clone3, ENOSYS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4), LOAD_ARG0,
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1), ALLOW, DENY(EPERM),
        IF_NR_DENY(SYS_ptrace, EPERM),
        IF_NR_DENY(SYS_process_vm_readv, EPERM),
        IF_NR_DENY(SYS_process_vm_writev, EPERM),
        IF_NR_DENY(SYS_pidfd_open, EPERM),
        IF_NR_DENY(SYS_pidfd_getfd, EPERM),
        IF_NR_DENY(SYS_pidfd_send_signal, EPERM),
        IF_NR_ARG0_IS(SYS_kill, self, EPERM),
        IF_NR_ARG0_IS(SYS_tgkill, self, EPERM),
        IF_NR_DENY(SYS_tkill, EPERM),
        IF_NR_ARG0_IS(SYS_rt_sigqueueinfo, self, EPERM),
        IF_NR_ARG0_IS(SYS_rt_tgsigqueueinfo, self, EPERM),
        IF_NR_DENY(SYS_socket, EACCES),
        IF_NR_DENY(SYS_connect, EACCES),
        IF_NR_DENY(SYS_bind, EACCES),
        IF_NR_DENY(SYS_unshare, EPERM),
        IF_NR_DENY(SYS_setns, EPERM),
        IF_NR_DENY(SYS_mount, EPERM),
        IF_NR_DENY(SYS_umount2, EPERM),
        IF_NR_DENY(SYS_pivot_root, EPERM),
        IF_NR_DENY(SYS_chroot, EPERM),
        IF_NR_DENY(SYS_bpf, EPERM),
        IF_NR_DENY(SYS_perf_event_open, EPERM),
        IF_NR_DENY(SYS_keyctl, EPERM),
        IF_NR_DENY(SYS_add_key, EPERM),
        IF_NR_DENY(SYS_request_key, EPERM),
        IF_NR_DENY(SYS_userfaultfd, EPERM),
        IF_NR_DENY(SYS_kexec_load, EPERM),
        IF_NR_DENY(SYS_init_module, EPERM),
        IF_NR_DENY(SYS_finit_module, EPERM),
        IF_NR_DENY(SYS_open_by_handle_at, EPERM),
        IF_NR_DENY(SYS_iopl, EPERM),
        IF_NR_DENY(SYS_ioperm, EPERM),
        ALLOW,
    };
    struct sock_fprog program = {.len = (unsigned short)(sizeof filter / sizeof filter[0]), .filter = filter};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) return 0;
    return RLM_LAYER_SECCOMP;
}

// MARK: - Capabilities

struct rlm_cap_header {
    uint32_t version;
    int pid;
};
struct rlm_cap_data {
    uint32_t effective, permitted, inheritable;
};

static void drop_capabilities(void) {
    struct rlm_cap_header header = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    struct rlm_cap_data data[2] = {{0, 0, 0}, {0, 0, 0}};
    syscall(SYS_capset, &header, data);
    for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

unsigned rlm_confine(const char *const *read_paths, size_t read_count, const char *const *write_paths, size_t write_count,
                     int *landlock_abi) {
    unsigned layers = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) layers |= RLM_LAYER_NO_NEW_PRIVS;
    drop_capabilities();
    layers |= apply_landlock(read_paths, read_count, write_paths, write_count, landlock_abi);
    layers |= apply_seccomp();
    return layers;
}

// MARK: - Spawning and the channel

extern char **environ;

int rlm_spawn(const char *path, char *const *arguments, int channel, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int error = posix_spawn_file_actions_init(&actions);
    if (error) return error;
    error = posix_spawnattr_init(&attributes);
    if (error) {
        posix_spawn_file_actions_destroy(&actions);
        return error;
    }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    // dup2 clears close-on-exec on the copy; every other descriptor of the host is close-on-exec
    // (Swift, NIO and this library open them so) or closed by the worker at start.
    posix_spawn_file_actions_adddup2(&actions, channel, 3);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    // Nothing of the host's environment; the Swift runtime's crash reporter is off, since it
    // could not start its helper under seccomp anyway and a crash is reported by the host.
    char backtrace[] = "SWIFT_BACKTRACE=enable=no";
    char *environment[] = {backtrace, NULL};
    error = posix_spawn(pid, path, &actions, &attributes, arguments, environment);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    return error;
}

int rlm_socket_pair(int pair[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0 ? 0 : errno;
}

int rlm_send(int socket, const void *bytes, size_t size, int fd) {
    const char *cursor = bytes;
    int pending_fd = fd;
    while (size > 0) {
        struct iovec vector = {.iov_base = (void *)cursor, .iov_len = size};
        struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1};
        char control[CMSG_SPACE(sizeof(int))];
        if (pending_fd >= 0) {
            memset(control, 0, sizeof control);
            message.msg_control = control;
            message.msg_controllen = sizeof control;
            struct cmsghdr *header = CMSG_FIRSTHDR(&message);
            header->cmsg_level = SOL_SOCKET;
            header->cmsg_type = SCM_RIGHTS;
            header->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(header), &pending_fd, sizeof(int));
        }
        ssize_t sent = sendmsg(socket, &message, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        pending_fd = -1;
        cursor += sent;
        size -= (size_t)sent;
    }
    return 0;
}

int rlm_receive(int socket, void *bytes, size_t size, int *fd) {
    char *cursor = bytes;
    *fd = -1;
    while (size > 0) {
        struct iovec vector = {.iov_base = cursor, .iov_len = size};
        char control[CMSG_SPACE(sizeof(int))];
        struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
        ssize_t received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
        if (received < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (received == 0) return -1;
        for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
            if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(header), sizeof(int));
        }
        cursor += received;
        size -= (size_t)received;
    }
    return 0;
}

int rlm_memory_file(const void *bytes, size_t size) {
    int fd = memfd_create("rlm-context", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    const char *cursor = bytes;
    size_t left = size;
    while (left > 0) {
        ssize_t written = write(fd, cursor, left);
        if (written < 0) {
            if (errno == EINTR) continue;
            int error = errno;
            close(fd);
            return -error;
        }
        cursor += written;
        left -= (size_t)written;
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    return fd;
}

#else  // Not Linux: process isolation is unavailable; every entry point says so.

#include <errno.h>

unsigned rlm_confine_early(pid_t parent, rlm_limits limits) {
    (void)parent;
    (void)limits;
    return 0;
}

unsigned rlm_confine(const char *const *read_paths, size_t read_count, const char *const *write_paths, size_t write_count,
                     int *landlock_abi) {
    (void)read_paths;
    (void)read_count;
    (void)write_paths;
    (void)write_count;
    *landlock_abi = 0;
    return 0;
}

int rlm_spawn(const char *path, char *const *arguments, int channel, pid_t *pid) {
    (void)path;
    (void)arguments;
    (void)channel;
    (void)pid;
    return ENOSYS;
}

int rlm_socket_pair(int pair[2]) {
    (void)pair;
    return ENOSYS;
}

int rlm_send(int socket, const void *bytes, size_t size, int fd) {
    (void)socket;
    (void)bytes;
    (void)size;
    (void)fd;
    return ENOSYS;
}

int rlm_receive(int socket, void *bytes, size_t size, int *fd) {
    (void)socket;
    (void)bytes;
    (void)size;
    *fd = -1;
    return ENOSYS;
}

int rlm_memory_file(const void *bytes, size_t size) {
    (void)bytes;
    (void)size;
    return -ENOSYS;
}

#endif
