using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "recvfrom", SetLastError = true)]
    public static partial nint recvfrom(int fd, void* buffer, nint length, int flags, void* address, uint* addressLength);
}
