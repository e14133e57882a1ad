using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int epoll_create1(int flags);
}
