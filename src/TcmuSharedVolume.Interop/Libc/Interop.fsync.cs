using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "fsync", SetLastError = true)]
    public static partial int fsync(int fd);
}
