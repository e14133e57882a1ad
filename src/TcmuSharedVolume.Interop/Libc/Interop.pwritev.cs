using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "pwritev", SetLastError = true)]
    public static partial nint pwritev(int fd, void* iov, int iovcnt, long offset);
}
