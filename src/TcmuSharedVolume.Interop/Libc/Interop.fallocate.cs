using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "fallocate", SetLastError = true)]
    public static partial int fallocate(int fd, int mode, long offset, long length);
}
