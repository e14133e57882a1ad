using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Frees the iterator of <see cref="rados_getxattrs"/>.</summary>
    [LibraryImport(Library, EntryPoint = "rados_getxattrs_end")]
    public static partial void rados_getxattrs_end(nint iterator);
}
