using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>After every image opened in it is closed.</summary>
    [LibraryImport(Library, EntryPoint = "rados_ioctx_destroy")]
    public static partial void rados_ioctx_destroy(nint ioctx);
}
