using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    public static partial nint write(int fd, void* buffer, nint count);
}
