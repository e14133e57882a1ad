using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint read(int fd, void* buffer, nint count);
}
