using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "getsockname", SetLastError = true)]
    public static partial int getsockname(int fd, void* address, uint* addressLength);
}
