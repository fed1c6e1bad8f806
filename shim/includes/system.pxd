# Declarations of the libc / POSIX / CPython parts the extension calls that
# Cython's own libc/posix/cpython .pxd files lack (or declare differently).
from libc.stdint cimport uint64_t
from posix.types cimport off_t, pid_t
from posix.stat cimport struct_stat

cdef extern from "<sys/statvfs.h>" nogil:
    struct statvfs:
        unsigned long f_bsize
        unsigned long f_frsize
        unsigned long f_blocks
        unsigned long f_bfree
        unsigned long f_bavail
        unsigned long f_files
        unsigned long f_ffree
        unsigned long f_favail
        unsigned long f_fsid
        unsigned long f_flag
        unsigned long f_namemax

cdef extern from "<fcntl.h>" nogil:
    struct flock:
        short l_type
        short l_whence
        off_t l_start
        off_t l_len
        pid_t l_pid

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/mount.h>" nogil:
    int c_mount "mount"(const char *source, const char *target, const char *fstype,
                        unsigned long flags, const void *data)
    int c_umount2 "umount2"(const char *target, int flags)

cdef extern from "<errno.h>" nogil:
    int c_errno "errno"

cdef extern from "<sys/stat.h>" nogil:
    int c_lstat "lstat"(const char *path, struct_stat *buf)
    int c_fstatat "fstatat"(int dirfd, const char *path, struct_stat *buf, int flags)

cdef extern from "<fcntl.h>" nogil:
    int AT_EMPTY_PATH
    int AT_SYMLINK_NOFOLLOW

cdef extern from "<dirent.h>" nogil:
    ctypedef struct DIR
    struct dirent:
        uint64_t d_ino
        unsigned char d_type
        char d_name[256]
    DIR *opendir(const char *name)
    dirent *readdir(DIR *d)
    int closedir(DIR *d)
    int dirfd(DIR *d)
    unsigned char DT_UNKNOWN

cdef extern from "<dlfcn.h>" nogil:
    ctypedef struct Dl_info:
        const char *dli_fname
    int dladdr(const void *addr, Dl_info *info)

cdef extern from "Python.h":
    bytes PyUnicode_EncodeFSDefault(object)
