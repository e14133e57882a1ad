using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int epoll_wait(int epfd, void* events, int maxevents, int timeout);
}
