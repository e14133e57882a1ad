using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint pwrite(int fd, void* buffer, nint count, long offset);
}
