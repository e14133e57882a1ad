using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "bind", SetLastError = true)]
    public static partial int bind(int fd, void* address, uint addressLength);
}
