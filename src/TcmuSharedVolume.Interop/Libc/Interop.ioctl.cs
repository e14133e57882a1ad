using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int ioctl(int fd, nuint request, void* argument);
}
