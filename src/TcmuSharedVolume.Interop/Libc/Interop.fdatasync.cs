using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int fdatasync(int fd);
}
