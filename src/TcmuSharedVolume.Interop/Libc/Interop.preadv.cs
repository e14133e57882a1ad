using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "preadv", SetLastError = true)]
    public static partial nint preadv(int fd, void* iov, int iovcnt, long offset);
}
