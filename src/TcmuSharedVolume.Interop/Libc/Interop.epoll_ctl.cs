using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int epoll_ctl(int epfd, int op, int fd, void* evt);
}
