using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    /// <summary>Open file description lock commands (Linux 3.15): the lock belongs to the open
    /// file, not to the process, so two opens in one process conflict, closing another fd of the
    /// same file does not drop it, and it conflicts with the classic F_SETLK record locks that
    /// other programs (tcmu-runner) take.</summary>
    public const int F_OFD_GETLK = 36;
    public const int F_OFD_SETLK = 37;

    public const short F_RDLCK = 0;
    public const short F_WRLCK = 1;
    public const short F_UNLCK = 2;

    /// <summary>fcntl(2) with a struct flock argument. fcntl is variadic; on the Linux ABIs .NET
    /// runs on (x86-64 SysV, AArch64) a pointer passed as the third argument travels in the same
    /// register either way.</summary>
    [LibraryImport(Library, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, Flock* argument);
}

/// <summary>struct flock (the same layout on x86-64 and AArch64: two shorts, then 64-bit
/// l_start and l_len, then l_pid).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Flock
{
    public short Type;
    public short Whence;
    public long Start;
    /// <summary>0: to the end of the file, however it grows.</summary>
    public long Length;
    /// <summary>0 when setting an OFD lock; F_OFD_GETLK reports -1 for an OFD lock and the
    /// owner's pid for a classic record lock.</summary>
    public int Pid;
}
