// Process isolation for swift-rlm's worker: confinement with the kernel's own mechanisms
// (user and network namespaces, no_new_privs, Landlock, seccomp, resource limits), spawning the
// worker with nothing but its channel, and passing descriptors over that channel. Plain C; the
// policy (which paths, which limits) comes from Swift.
#ifndef SWIFT_RLM_PROCESS_H
#define SWIFT_RLM_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#pragma clang assume_nonnull begin

/// Which confinement layers were applied; the complement of a requested set is what the kernel
/// lacked.
enum {
    RLM_LAYER_USER_NAMESPACE = 1u << 0,
    RLM_LAYER_NETWORK_NAMESPACE = 1u << 1,
    RLM_LAYER_NO_NEW_PRIVS = 1u << 2,
    RLM_LAYER_LANDLOCK = 1u << 3,
    RLM_LAYER_LANDLOCK_NETWORK = 1u << 4,
    RLM_LAYER_LANDLOCK_SCOPE = 1u << 5,
    RLM_LAYER_SECCOMP = 1u << 6,
    RLM_LAYER_RESOURCE_LIMITS = 1u << 7,
    RLM_LAYER_PID_NAMESPACE = 1u << 8,
};

/// Limits for the worker. A zero value leaves that limit alone.
typedef struct {
    uint64_t address_space_bytes;
    uint64_t open_files;
    uint64_t file_size_bytes;
} rlm_limits;

/// Step 1, while the process has a single thread: dies with its parent (`parent` must still be
/// the parent, else it exits), new user, network, mount and PID namespaces (the ids map to
/// themselves; the process forks, the child continues as the first process of the new PID
/// namespace with a /proc of its own, and the parent only relays the child's end), resource
/// limits. Returns the layers applied.
unsigned rlm_confine_early(pid_t parent, rlm_limits limits);

/// Step 2, after everything the process needs is loaded or open: no_new_privs, capabilities
/// dropped, Landlock (read-only `read_paths`, full access to `write_paths`, no TCP, no signals
/// or abstract sockets outside the domain) and a seccomp filter (no execve, no new processes,
/// no ptrace, no sockets, no signals to other processes, no namespace or mount changes).
/// Returns the layers applied; `*landlock_abi` receives the kernel's Landlock ABI (0: none).
unsigned rlm_confine(const char *_Null_unspecified const *_Nullable read_paths, size_t read_count,
                     const char *_Null_unspecified const *_Nullable write_paths, size_t write_count, int *landlock_abi);

/// Starts `path` with `arguments` (NULL-terminated), an empty environment (but for switching off
/// the Swift runtime's crash reporter), standard input and
/// output on /dev/null, standard error inherited, and `channel` as descriptor 3; no other
/// descriptor is inherited. Returns 0 and sets `*pid`, or an errno value.
int rlm_spawn(const char *path, char *_Nullable const *_Nonnull arguments, int channel, pid_t *pid);

/// A connected AF_UNIX stream socket pair, close-on-exec. Returns 0 or an errno value.
int rlm_socket_pair(int pair[_Nonnull 2]);

/// Sends `size` bytes and, when `fd` >= 0, the descriptor with them (SCM_RIGHTS). Returns 0 or
/// an errno value. Retries short writes and EINTR.
int rlm_send(int socket, const void *bytes, size_t size, int fd);

/// Receives exactly `size` bytes; a descriptor that came with them is stored in `*fd` (else -1).
/// Returns 0, an errno value, or -1 at end of stream.
int rlm_receive(int socket, void *bytes, size_t size, int *fd);

/// An anonymous memory file (memfd, sealed against growth and writes once filled) holding
/// `size` bytes from `bytes`. Returns the descriptor or -errno.
int rlm_memory_file(const void *_Nullable bytes, size_t size);

#pragma clang assume_nonnull end

#endif
