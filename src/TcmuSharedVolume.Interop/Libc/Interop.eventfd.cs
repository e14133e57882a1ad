using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);
}
