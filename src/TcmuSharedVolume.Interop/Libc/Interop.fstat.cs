using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    /// <summary>fstat(2) into a raw buffer; read it with <see cref="StatBuffer"/>. The symbol
    /// exists in glibc since 2.33 (before that only __fxstat).</summary>
    [LibraryImport(Library, EntryPoint = "fstat", SetLastError = true)]
    public static partial int fstat(int fd, StatBuffer* buffer);
}

/// <summary>
/// struct stat, read by offset because its layout differs between architectures:
/// x86_64 has st_mode at 24, the generic layout (aarch64) at 16; st_rdev, st_size, st_blksize and
/// st_blocks sit at 40/32, 48, 56 and 64 on both (st_blksize is 4 bytes on aarch64, but
/// little-endian so the low word reads the same).
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
public unsafe struct StatBuffer
{
    private fixed byte _bytes[256];

    public const uint S_IFMT = 0xF000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFBLK = 0x6000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFLNK = 0xA000;
    public const uint S_IFSOCK = 0xC000;
    public const uint S_ISVTX = 0x200;
    public const uint S_IWOTH = 0x2;

    private static bool IsX64 => RuntimeInformation.ProcessArchitecture == Architecture.X64;

    private readonly T At<T>(int offset) where T : unmanaged
    {
        fixed (byte* p = _bytes) return *(T*)(p + offset);
    }

    /// <summary>st_dev: the file system (or, for a device node, the one holding the node).</summary>
    public readonly ulong Dev => At<ulong>(0);
    public readonly ulong Ino => At<ulong>(8);
    public readonly uint Mode => At<uint>(IsX64 ? 24 : 16);
    public readonly uint Uid => At<uint>(IsX64 ? 28 : 24);
    public readonly ulong Rdev => At<ulong>(IsX64 ? 40 : 32);
    public readonly long Size => At<long>(48);
    public readonly int BlockSize => At<int>(56);
    /// <summary>512-byte units allocated.</summary>
    public readonly long Blocks => At<long>(64);

    public readonly bool IsRegularFile => (Mode & S_IFMT) == S_IFREG;
    public readonly bool IsBlockDevice => (Mode & S_IFMT) == S_IFBLK;
    public readonly bool IsDirectory => (Mode & S_IFMT) == S_IFDIR;
    public readonly bool IsSymbolicLink => (Mode & S_IFMT) == S_IFLNK;
    public readonly bool IsSocket => (Mode & S_IFMT) == S_IFSOCK;

    /// <summary>gnu_dev_major/minor of st_rdev.</summary>
    public readonly uint RdevMajor => (uint)(((Rdev >> 8) & 0xFFF) | ((Rdev >> 32) & ~0xFFFUL));
    public readonly uint RdevMinor => (uint)((Rdev & 0xFF) | ((Rdev >> 12) & ~0xFFUL));
}
