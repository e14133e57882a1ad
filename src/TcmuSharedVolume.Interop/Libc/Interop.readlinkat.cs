using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    /// <summary>readlinkat(2). With an empty <paramref name="path"/> and an O_PATH|O_NOFOLLOW
    /// descriptor of the link itself, reads exactly the link that was checked. No NUL is appended.</summary>
    [LibraryImport(Library, EntryPoint = "readlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint readlinkat(int dirFd, string path, byte* buffer, nuint size);
}
