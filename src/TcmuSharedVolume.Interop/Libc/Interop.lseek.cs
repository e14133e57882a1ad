using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "lseek", SetLastError = true)]
    public static partial long lseek(int fd, long offset, int whence);
}
