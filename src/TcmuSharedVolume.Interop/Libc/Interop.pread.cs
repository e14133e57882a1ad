using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "pread", SetLastError = true)]
    public static partial nint pread(int fd, void* buffer, nint count, long offset);
}
