namespace TcmuSharedVolume.Interop;

public static partial class Libc
{
    // mmap
    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public static readonly unsafe void* MAP_FAILED = (void*)-1;

    // lseek
    public const int SEEK_SET = 0;
    public const int SEEK_END = 2;
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    // fallocate
    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    public const int FALLOC_FL_ZERO_RANGE = 0x10;

    // pwritev2
    public const int RWF_DSYNC = 0x02;

    // epoll
    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const int EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLET = 0x80000000;

    // eventfd
    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    // ioctl (linux/fs.h)
    public const nuint BLKGETSIZE64 = 0x80081272;
    public const nuint BLKSSZGET = 0x1268;
    /// <summary>_IO(0x12, 123): the physical sector size, an unsigned int.</summary>
    public const nuint BLKPBSZGET = 0x127B;
    public const nuint BLKDISCARD = 0x1277;
    public const nuint BLKZEROOUT = 0x127F;
    public const nuint BLKDISCARDZEROES = 0x127C;
}

/// <summary>struct epoll_event: packed on x86_64 (12 bytes).</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Pack = 4)]
public struct EpollEvent
{
    public uint Events;
    public ulong Data;
}
