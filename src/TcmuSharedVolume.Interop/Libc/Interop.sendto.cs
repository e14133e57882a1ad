using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "sendto", SetLastError = true)]
    public static partial nint sendto(int fd, void* buffer, nint length, int flags, void* address, uint addressLength);
}
