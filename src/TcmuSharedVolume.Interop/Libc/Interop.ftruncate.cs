using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int ftruncate(int fd, long length);
}
