using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    /// <summary>openat(2): opens <paramref name="path"/> relative to the directory <paramref name="dirFd"/>,
    /// so that a path can be resolved one component at a time without a window between check and use.</summary>
    [LibraryImport(Library, EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int openat(int dirFd, string path, int flags, int mode);
}
