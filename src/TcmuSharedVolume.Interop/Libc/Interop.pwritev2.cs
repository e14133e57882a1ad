using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "pwritev2", SetLastError = true)]
    public static partial nint pwritev2(int fd, void* iov, int iovcnt, long offset, int flags);
}
