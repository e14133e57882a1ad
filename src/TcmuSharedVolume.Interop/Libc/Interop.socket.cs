using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    [LibraryImport(Library, EntryPoint = "socket", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);
}
