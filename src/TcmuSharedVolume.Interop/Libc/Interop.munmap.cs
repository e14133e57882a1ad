using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "munmap", SetLastError = true)]
    public static partial int munmap(void* address, nuint length);
}
