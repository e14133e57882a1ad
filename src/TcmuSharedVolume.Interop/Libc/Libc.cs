using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

/// <summary>
/// libc, one declaration per function, each in its own file (Interop.&lt;function&gt;.cs), the way
/// dotnet/runtime keeps its Interop area. Every call sets errno: read it with
/// <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
public static unsafe partial class Libc
{
    internal const string Library = "libc";

    public const int O_RDONLY = 0x0;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_NONBLOCK = 0x800;
    public const int O_DSYNC = 0x1000;
    public const int O_DIRECT = 0x4000;
    public const int O_DIRECTORY = 0x10000;
    public const int O_NOFOLLOW = 0x20000;
    public const int O_CLOEXEC = 0x80000;
    public const int O_PATH = 0x200000;
    public const int AT_FDCWD = -100;

    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EAGAIN = 11;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENOTDIR = 20;
    public const int EISDIR = 21;
    public const int ENOSPC = 28;
    public const int ELOOP = 40;
    public const int EOPNOTSUPP = 95;

    /// <summary>errno of the last call, as a message for logs.</summary>
    public static string ErrorMessage(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
